// kafkajs's admin client against a running broker: topic configs, partitions, the cluster, and
// deleting records.
//
// Usage: node admin_check.js BOOTSTRAP TOPIC [--timeout-s S] [--names a,b,c] [--broker-max-message-bytes N]
// (kafkajs is found through NODE_PATH: scripts/setup-clients installs it in target/compat-node.)
//
// 1. createTopics with configEntries (retention.ms, cleanup.policy=delete, segment.bytes), and a
//    topic without overrides.
// 2. describeConfigs: every name of --names is reported; the overrides with source TOPIC_CONFIG,
//    the rest DEFAULT_CONFIG or STATIC_BROKER_CONFIG (max.message.bytes from the broker's
//    message.max.bytes=N); configNames selects; includeSynonyms; an unknown topic.
// 3. alterConfigs (the legacy, whole-set AlterConfigs): the given set replaces the topic's
//    overrides (those left out go back to the default); validateOnly changes nothing; a bad value
//    and an unknown name fail with INVALID_CONFIG and change nothing.
// 4. createPartitions 2 -> 4, a record produced to partition 3; shrinking fails with
//    INVALID_PARTITIONS.
// 5. describeCluster: one broker at BOOTSTRAP, the controller, a cluster id.
// 6. deleteTopicRecords below offset 20: fetchTopicOffsets shows low 20; a consumer group reading
//    from the beginning starts at 20; offset -1 deletes up to the high watermark; past it fails.
//
// Exit codes: 0 success, 1 verification failure or client error, 2 usage, 3 timeout.

'use strict'

let kafkajs
try {
  kafkajs = require('kafkajs')
} catch (e) {
  console.error('FAIL: cannot load kafkajs (run scripts/setup-clients and set NODE_PATH): ' + e.message)
  process.exit(1)
}
const { Kafka, logLevel, Partitioners, ConfigResourceTypes, ConfigSource } = kafkajs

class Failure extends Error {}

function check (cond, message) {
  if (!cond) throw new Failure(message)
}

function say (line) {
  console.log(line)
}

const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms))

function usage (message) {
  console.error((message ? `usage error: ${message}\n` : '') +
    'usage: node admin_check.js BOOTSTRAP TOPIC [--timeout-s S] [--names a,b,c] [--broker-max-message-bytes N]')
  process.exit(2)
}

function parseArgs (argv) {
  if (argv.length < 2) usage()
  const args = { bootstrap: argv[0], topic: argv[1], timeoutS: 90, names: [], brokerMaxMessageBytes: null }
  for (let i = 2; i < argv.length; i += 2) {
    const value = argv[i + 1]
    if (value === undefined) usage(`missing value for ${argv[i]}`)
    if (argv[i] === '--timeout-s' && Number(value) > 0) {
      args.timeoutS = Number(value)
    } else if (argv[i] === '--names') {
      args.names = value.split(',')
    } else if (argv[i] === '--broker-max-message-bytes') {
      args.brokerMaxMessageBytes = value
    } else {
      usage(`bad option ${argv[i]}`)
    }
  }
  return args
}

const args = parseArgs(process.argv.slice(2))
// Leave part of the watchdog's budget for disconnecting.
const deadline = Date.now() + Math.max(1, args.timeoutS - 10) * 1000

setTimeout(() => {
  console.error(`FAIL: timed out after ${args.timeoutS} s`)
  process.exit(3)
}, args.timeoutS * 1000)

/** Resolves to the first truthy value of `probe` (errors count as not yet), or fails after `ms`. */
async function waitFor (what, ms, probe) {
  const until = Math.min(deadline, Date.now() + ms)
  let last = null
  for (;;) {
    try {
      const v = await probe()
      if (v) return v
    } catch (e) {
      last = e
    }
    if (Date.now() > until) {
      throw new Failure(`timed out waiting for ${what}` + (last ? ` (last: ${last.message || last})` : ''))
    }
    await sleep(200)
  }
}

/** `promise`, or a Failure once the deadline (or `ms`) has passed. */
function bounded (promise, what, ms = 30000) {
  const left = Math.max(1, Math.min(ms, deadline - Date.now()))
  let timer
  const timeout = new Promise((resolve, reject) => {
    timer = setTimeout(() => reject(new Failure(`${what} did not finish within ${left} ms`)), left)
  })
  return Promise.race([promise, timeout]).finally(() => clearTimeout(timer))
}

/** The Kafka error types (INVALID_CONFIG, ...) an error carries, wherever kafkajs put them. */
function errorTypes (e) {
  const out = []
  const walk = (x, depth) => {
    if (!x || depth > 4) return
    if (x.type) out.push(x.type)
    walk(x.cause, depth + 1)
    walk(x.originalError, depth + 1)
    if (Array.isArray(x.partitions)) x.partitions.forEach((p) => walk(p.error, depth + 1))
  }
  walk(e, 0)
  return out
}

/** Runs `action`, which must fail with Kafka error `type`; returns the error. */
async function expectError (what, type, action) {
  let err = null
  try {
    await bounded(action(), what)
  } catch (e) {
    if (e instanceof Failure) throw e
    err = e
  }
  check(err !== null, `${what}: succeeded, expected ${type}`)
  const types = errorTypes(err)
  check(types.includes(type), `${what}: expected ${type}, got ${err.name}: ${err.message} (types ${JSON.stringify(types)})`)
  say(`${what}: ${type} (${err.message})`)
  return err
}

const SOURCE_NAMES = Object.fromEntries(Object.entries(ConfigSource).map(([k, v]) => [v, k]))
const show = (e) => `${e.configName}=${JSON.stringify(e.configValue)} (${SOURCE_NAMES[e.configSource] || e.configSource})`

const kafka = new Kafka({
  clientId: 'strom-kafkajs-admin-check',
  brokers: [args.bootstrap],
  logLevel: logLevel.NOTHING,
  connectionTimeout: 5000,
  requestTimeout: 15000,
  // Refusals must surface quickly: they are checked, not retried.
  retry: { retries: 2, initialRetryTime: 200, maxRetryTime: 1000 }
})

async function describeTopic (admin, topic, extra = {}) {
  const res = await bounded(admin.describeConfigs({
    includeSynonyms: false,
    ...extra,
    resources: [{ type: ConfigResourceTypes.TOPIC, name: topic, ...(extra.configNames ? { configNames: extra.configNames } : {}) }]
  }), `describeConfigs(${topic})`)
  check(res.resources.length === 1, `describeConfigs(${topic}) returned ${res.resources.length} resources`)
  const r = res.resources[0]
  check(r.errorCode === 0, `describeConfigs(${topic}): error ${r.errorCode} ${r.errorMessage}`)
  const out = new Map()
  for (const e of r.configEntries) {
    check(!out.has(e.configName), `describeConfigs(${topic}) reports ${e.configName} twice`)
    out.set(e.configName, e)
  }
  return out
}

function checkEntry (configs, name, value, source, where) {
  const e = configs.get(name)
  check(e !== undefined, `${where}: ${name} is not reported`)
  check(e.configValue === value && e.configSource === source,
    `${where}: ${show(e)}, expected ${name}=${JSON.stringify(value)} (${SOURCE_NAMES[source]})`)
}

function snapshot (configs) {
  return JSON.stringify([...configs.values()].map((e) => [e.configName, e.configValue, e.configSource]).sort())
}

async function alterTopic (admin, topic, entries, validateOnly = false) {
  return admin.alterConfigs({
    validateOnly,
    resources: [{ type: ConfigResourceTypes.TOPIC, name: topic, configEntries: entries }]
  })
}

async function offsetsOf (admin, topic) {
  const res = await bounded(admin.fetchTopicOffsets(topic), `fetchTopicOffsets(${topic})`)
  const out = new Map()
  for (const p of res) out.set(p.partition, { low: Number(p.low), high: Number(p.high) })
  return out
}

async function produce (producer, topic, partition, count, prefix) {
  const messages = []
  for (let i = 0; i < count; i++) messages.push({ partition, key: `k${i}`, value: `${prefix}-${i}` })
  const res = await bounded(producer.send({ topic, acks: -1, messages }), `producer.send to ${topic}-${partition}`)
  check(res.length === 1 && res[0].errorCode === 0 && res[0].partition === partition,
    `produce to ${topic}-${partition}: ${JSON.stringify(res)}`)
  return Number(res[0].baseOffset)
}

async function configsChecks (admin, topic, plain) {
  const overrides = { 'retention.ms': '3600000', 'cleanup.policy': 'delete', 'segment.bytes': '1048576' }
  const created = await bounded(admin.createTopics({
    topics: [{
      topic,
      numPartitions: 2,
      replicationFactor: 1,
      configEntries: Object.entries(overrides).map(([name, value]) => ({ name, value }))
    }, { topic: plain, numPartitions: 1, replicationFactor: 1 }],
    waitForLeaders: true
  }), 'admin.createTopics')
  check(created === true, `createTopics returned ${created} (the topics existed already?)`)
  say(`created ${topic} (2 partitions, configs ${JSON.stringify(overrides)}) and ${plain}`)

  const c = await describeTopic(admin, topic)
  const p = await describeTopic(admin, plain)
  const missing = args.names.filter((n) => !c.has(n))
  check(missing.length === 0, `describeConfigs(${topic}) does not report ${missing} (reported: ${[...c.keys()].sort()})`)
  check(JSON.stringify([...c.keys()].sort()) === JSON.stringify([...p.keys()].sort()),
    `${topic} and ${plain} report different config names`)
  say(`describeConfigs(${topic}): ${c.size} configs, all ${args.names.length} names Kafka 3.8 reports among them`)
  for (const [name, e] of c) {
    check(!e.readOnly && !e.isSensitive, `describeConfigs(${topic}): ${show(e)} read-only ${e.readOnly}, sensitive ${e.isSensitive}`)
    if (name in overrides) {
      check(e.configValue === overrides[name] && e.configSource === ConfigSource.TOPIC_CONFIG && !e.isDefault,
        `describeConfigs(${topic}): ${show(e)}, isDefault ${e.isDefault}, expected ${name}=${overrides[name]} (TOPIC_CONFIG)`)
    } else {
      check(e.configSource === ConfigSource.DEFAULT_CONFIG || e.configSource === ConfigSource.STATIC_BROKER_CONFIG,
        `describeConfigs(${topic}): ${show(e)}, expected DEFAULT_CONFIG or STATIC_BROKER_CONFIG`)
      const q = p.get(name)
      check(q.configValue === e.configValue && q.configSource === e.configSource,
        `describeConfigs: ${show(e)} on ${topic} but ${show(q)} on ${plain}`)
    }
  }
  checkEntry(p, 'cleanup.policy', 'delete', ConfigSource.DEFAULT_CONFIG, `describeConfigs(${plain})`)
  checkEntry(p, 'segment.bytes', '1073741824', ConfigSource.DEFAULT_CONFIG, `describeConfigs(${plain})`)
  checkEntry(p, 'compression.type', 'producer', ConfigSource.DEFAULT_CONFIG, `describeConfigs(${plain})`)
  if (args.brokerMaxMessageBytes !== null) {
    checkEntry(p, 'max.message.bytes', args.brokerMaxMessageBytes, ConfigSource.STATIC_BROKER_CONFIG,
      `describeConfigs(${plain}) (broker message.max.bytes=${args.brokerMaxMessageBytes})`)
  }
  say('overrides reported as TOPIC_CONFIG, the rest as on a topic without overrides; Kafka defaults as ' +
    'DEFAULT_CONFIG, the broker\'s message.max.bytes as STATIC_BROKER_CONFIG')

  const some = await describeTopic(admin, topic, { configNames: ['retention.ms', 'cleanup.policy'] })
  check(JSON.stringify([...some.keys()].sort()) === '["cleanup.policy","retention.ms"]',
    `describeConfigs(${topic}, configNames [retention.ms, cleanup.policy]) returned ${[...some.keys()]}`)
  say('describeConfigs with configNames: just those')

  const syn = await describeTopic(admin, topic, { includeSynonyms: true })
  const rs = syn.get('retention.ms').configSynonyms
  check(Array.isArray(rs) && rs.length >= 1 && rs[0].configName === 'retention.ms' && rs[0].configValue === '3600000' &&
    rs[0].configSource === ConfigSource.TOPIC_CONFIG,
  `describeConfigs(includeSynonyms): retention.ms synonyms ${JSON.stringify(rs)}, expected retention.ms=3600000 (TOPIC_CONFIG) first`)
  say(`includeSynonyms: retention.ms ${JSON.stringify(rs)}`)

  await expectError(`describeConfigs(${topic}-missing)`, 'UNKNOWN_TOPIC_OR_PARTITION',
    () => admin.describeConfigs({ includeSynonyms: false, resources: [{ type: ConfigResourceTypes.TOPIC, name: `${topic}-missing` }] }))
}

async function alterChecks (admin, topic) {
  // The legacy AlterConfigs replaces the topic's whole set of overrides.
  await bounded(alterTopic(admin, topic, [{ name: 'retention.ms', value: '7200000' },
    { name: 'cleanup.policy', value: 'delete,compact' }]), 'alterConfigs')
  let c = await describeTopic(admin, topic)
  checkEntry(c, 'retention.ms', '7200000', ConfigSource.TOPIC_CONFIG, `describeConfigs(${topic}) after alterConfigs`)
  checkEntry(c, 'cleanup.policy', 'delete,compact', ConfigSource.TOPIC_CONFIG, `describeConfigs(${topic}) after alterConfigs`)
  checkEntry(c, 'segment.bytes', '1073741824', ConfigSource.DEFAULT_CONFIG,
    `describeConfigs(${topic}) after an alterConfigs without segment.bytes (the override must be gone)`)
  say('alterConfigs {retention.ms=7200000, cleanup.policy=delete,compact}: applied, segment.bytes back to the default')

  const before = snapshot(c)
  await bounded(alterTopic(admin, topic, [{ name: 'retention.ms', value: '1' }], true), 'alterConfigs(validateOnly)')
  c = await describeTopic(admin, topic)
  check(snapshot(c) === before, `alterConfigs(validateOnly) changed ${topic}'s configs: ${show(c.get('retention.ms'))}`)
  say('alterConfigs(validateOnly): accepted, nothing changed')

  for (const entries of [[{ name: 'retention.ms', value: 'soon' }], [{ name: 'no.such.config', value: '1' }]]) {
    await expectError(`alterConfigs(${JSON.stringify(entries)})`, 'INVALID_CONFIG', () => alterTopic(admin, topic, entries))
    c = await describeTopic(admin, topic)
    check(snapshot(c) === before, `the refused alterConfigs(${JSON.stringify(entries)}) changed ${topic}'s configs`)
  }
}

async function partitionsChecks (admin, topic) {
  // (kafkajs 2.2.4 resolves createPartitions to undefined, whatever its typings say.)
  await bounded(admin.createPartitions({ topicPartitions: [{ topic, count: 4 }] }), 'createPartitions')
  const offsets = await waitFor(`${topic} to show 4 partitions`, 15000, async () => {
    const o = await offsetsOf(admin, topic)
    return o.size === 4 ? o : null
  })
  say(`createPartitions(${topic} -> 4): fetchTopicOffsets lists partitions ${[...offsets.keys()]}`)
  // A new producer: one connected before would still have the old metadata (kafkajs refreshes it
  // after metadataMaxAge, 5 minutes) and drop records for partition 3 without a word.
  const producer = kafka.producer({ createPartitioner: Partitioners.DefaultPartitioner })
  let base
  try {
    await bounded(producer.connect(), 'producer connect')
    base = await produce(producer, topic, 3, 5, 'p3')
  } finally {
    await bounded(producer.disconnect(), 'producer disconnect', 10000).catch(() => {})
  }
  check(base === 0, `the first record of the new partition 3 got offset ${base}`)
  const after = await offsetsOf(admin, topic)
  check(after.get(3).high === 5, `partition 3 after 5 records: ${JSON.stringify(after.get(3))}`)
  say('5 records produced to the new partition 3 at offsets 0..4')
  await expectError(`createPartitions(${topic} -> 3)`, 'INVALID_PARTITIONS',
    () => admin.createPartitions({ topicPartitions: [{ topic, count: 3 }] }))
}

async function clusterChecks (admin) {
  const d = await bounded(admin.describeCluster(), 'describeCluster')
  say(`describeCluster: ${JSON.stringify(d)}`)
  const [host, port] = args.bootstrap.split(':')
  check(d.brokers.length === 1 && d.brokers[0].host === host && d.brokers[0].port === Number(port),
    `describeCluster brokers ${JSON.stringify(d.brokers)}, expected one at ${args.bootstrap}`)
  check(d.controller === d.brokers[0].nodeId, `describeCluster controller ${d.controller}, expected ${d.brokers[0].nodeId}`)
  check(typeof d.clusterId === 'string' && d.clusterId.length > 0, `describeCluster cluster id ${d.clusterId}`)
}

async function deleteRecordsChecks (admin, producer, topic) {
  await produce(producer, topic, 0, 50, 'd0')
  await produce(producer, topic, 1, 10, 'd1')
  let o = await offsetsOf(admin, topic)
  check(o.get(0).low === 0 && o.get(0).high === 50 && o.get(1).high === 10, `fetchTopicOffsets: ${JSON.stringify([...o])}`)

  await bounded(admin.deleteTopicRecords({ topic, partitions: [{ partition: 0, offset: '20' }] }), 'deleteTopicRecords(0 before 20)')
  o = await offsetsOf(admin, topic)
  check(o.get(0).low === 20 && o.get(0).high === 50, `after deleteTopicRecords(0 before 20): partition 0 ${JSON.stringify(o.get(0))}`)
  check(o.get(1).low === 0, `partition 1 (not deleted from): ${JSON.stringify(o.get(1))}`)
  say(`deleteTopicRecords(partition 0 before 20): fetchTopicOffsets low 20, high 50`)

  // A consumer group reading from the beginning starts at the new log start.
  const consumer = kafka.consumer({ groupId: `${topic}-readers`, maxWaitTimeInMs: 200, sessionTimeout: 10000 })
  const seen = new Map()
  try {
    await bounded(consumer.connect(), 'consumer connect')
    await bounded(consumer.subscribe({ topics: [topic], fromBeginning: true }), 'consumer subscribe')
    await bounded(consumer.run({
      eachMessage: async ({ partition, message }) => {
        if (!seen.has(partition)) seen.set(partition, [])
        seen.get(partition).push(Number(message.offset))
      }
    }), 'consumer run')
    await waitFor('the consumer to read partition 0 to its end', 30000, () => {
      const s = seen.get(0) || []
      return s.length > 0 && s[s.length - 1] === 49
    })
  } finally {
    await bounded(consumer.disconnect(), 'consumer disconnect', 10000).catch(() => {})
  }
  const s0 = seen.get(0)
  check(s0[0] === 20 && s0.length === 30, `a consumer from the beginning read partition 0 offsets ${s0[0]}..${s0[s0.length - 1]} ` +
    `(${s0.length} records), expected 20..49`)
  say('a consumer group from the beginning read partition 0 from 20 to 49')

  await bounded(admin.deleteTopicRecords({ topic, partitions: [{ partition: 1, offset: '-1' }] }), 'deleteTopicRecords(1 before -1)')
  o = await offsetsOf(admin, topic)
  check(o.get(1).low === 10 && o.get(1).high === 10, `after deleteTopicRecords(1 before -1): partition 1 ${JSON.stringify(o.get(1))}`)
  say('deleteTopicRecords(partition 1 before -1): everything deleted, low = high = 10')

  await expectError('deleteTopicRecords(partition 0 before 51, past the high watermark 50)', 'OFFSET_OUT_OF_RANGE',
    () => admin.deleteTopicRecords({ topic, partitions: [{ partition: 0, offset: '51' }] }))
  o = await offsetsOf(admin, topic)
  check(o.get(0).low === 20, `after the refused deleteTopicRecords: partition 0 ${JSON.stringify(o.get(0))}`)
}

async function main () {
  const admin = kafka.admin()
  const producer = kafka.producer({ createPartitioner: Partitioners.DefaultPartitioner })
  const topic = args.topic
  try {
    await bounded(admin.connect(), 'admin connect')
    await configsChecks(admin, topic, `${topic}-plain`)
    await alterChecks(admin, topic)
    await bounded(producer.connect(), 'producer connect')
    await clusterChecks(admin)
    await deleteRecordsChecks(admin, producer, topic)
    await partitionsChecks(admin, topic)
  } finally {
    await bounded(producer.disconnect(), 'producer disconnect', 10000).catch(() => {})
    await bounded(admin.disconnect(), 'admin disconnect', 10000).catch(() => {})
  }
}

main().then(() => {
  say('OK')
  process.exit(0)
}, (e) => {
  if (e instanceof Failure) {
    console.error('FAIL: ' + e.message)
  } else {
    console.error('FAIL: client error: ' + (e && e.stack ? e.stack : e))
  }
  process.exit(1)
})
