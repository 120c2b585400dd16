// The compatibility-matrix program of kafkajs: see compat/matrix/README.md for the contract and
// what each scenario checks.
//
// Usage: node matrix.js BOOTSTRAP TOPIC_PREFIX SCENARIO [SCENARIO ...]
// (kafkajs is found through NODE_PATH: scripts/setup-clients installs it in target/compat-node.)
//
// stdout carries only the JSON lines of the contract; kafkajs' logging and our own go to stderr.
// Each scenario is bounded by a 60 s timer; its internal waits end a few seconds earlier so that a
// failure says what was being waited for.
//
// What kafkajs cannot do the way the README words it:
// - it has no manual partition assignment: every consumer belongs to a group. Reading back and
//   consume.assign_seek use a consumer of a fresh group (subscribe, then seek for assign_seek).
// - it ships only the gzip codec. snappy and lz4 come from pure-JavaScript plugins in
//   compat/node/package.json: kafkajs-snappy (snappyjs) and kafka-lz4-lite (lz4js; its main entry,
//   not the worker one). The zstd plugins all need a native module built with node-gyp
//   (@kafkajs/zstd -> cppzst, @sensejs/kafkajs-zstd-support -> zstd-napi), which compat/node does
//   not install: produce.zstd is n/a unless @kafkajs/zstd is present.

'use strict'

let kafkajs
try {
  kafkajs = require('kafkajs')
} catch (e) {
  console.error('cannot load kafkajs (run scripts/setup-clients and set NODE_PATH): ' + e.message)
  process.exit(1)
}
const { Kafka, logLevel, CompressionTypes, CompressionCodecs, ConfigResourceTypes, Partitioners } = kafkajs
const KAFKAJS_VERSION = require('kafkajs/package.json').version

// Everything but the contract's lines goes to stderr, whoever writes it.
const writeOut = (line) => process.stdout.write(line + '\n')
console.log = console.info = console.debug = console.warn = (...a) => console.error(...a)
const log = (line) => process.stderr.write('[matrix] ' + line + '\n')

const SCENARIO_LIMIT_MS = 60000
const INTERNAL_BUDGET_MS = 52000
const T0 = 1600000000000

// --- codecs ----------------------------------------------------------------------------------

/** Why a codec cannot be used, by compression type (absent: usable); `installed`: we install it. */
const codecMissing = {}
// kafkajs' own entries for the codecs it lacks are functions that throw KafkaJSNotImplemented.
function loadCodec (type, plugin, installed, why, register) {
  try {
    register(require(plugin))
  } catch (e) {
    const reason = (e.message || String(e)).split('\n')[0]
    log(`codec plugin ${plugin} not loaded: ${reason}`)
    codecMissing[type] = { installed, why: installed ? `${why} (${reason}; run scripts/setup-clients)` : why }
  }
}
loadCodec(CompressionTypes.Snappy, 'kafkajs-snappy', true, 'the snappy codec plugin kafkajs-snappy does not load',
  (m) => { CompressionCodecs[CompressionTypes.Snappy] = m })
loadCodec(CompressionTypes.LZ4, 'kafka-lz4-lite', true, 'the lz4 codec plugin kafka-lz4-lite does not load',
  (m) => { CompressionCodecs[CompressionTypes.LZ4] = m.codec })
// A native plugin, not installed by compat/node (see the top of this file); used when present.
loadCodec(CompressionTypes.ZSTD, '@kafkajs/zstd', false,
  'kafkajs ships no zstd codec; its plugin @kafkajs/zstd needs the native cppzst module (node-gyp build), ' +
  'which compat/node does not install (no pure-JavaScript zstd plugin for kafkajs is known)',
  (m) => { CompressionCodecs[CompressionTypes.ZSTD] = m() })

// --- helpers ---------------------------------------------------------------------------------

class Failure extends Error {}
class NotApplicable extends Error {}

function check (cond, message) {
  if (!cond) throw new Failure(message)
}

const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms))

function errText (e) {
  if (!e) return String(e)
  const name = e.name || 'Error'
  return `${name}: ${e.message || String(e)}`
}

/** `promise`, or a Failure when it has not settled by the deadline (or within `ms`). */
function bounded (ctx, promise, what, ms = 30000) {
  const left = Math.max(1, Math.min(ms, ctx.deadline - Date.now()))
  let timer
  const timeout = new Promise((resolve, reject) => {
    timer = setTimeout(() => reject(new Failure(`${what} did not finish within ${left} ms`)), left)
  })
  return Promise.race([promise, timeout]).finally(() => clearTimeout(timer))
}

/** Waits until `probe` returns true; it may return a string describing what it sees meanwhile. */
async function waitFor (ctx, what, probe) {
  let last = null
  for (;;) {
    if (ctx.abandoned) throw new Failure('abandoned')
    try {
      const v = await probe()
      if (v === true) return
      last = v
    } catch (e) {
      if (e instanceof Failure) throw e
      last = errText(e)
    }
    if (Date.now() > ctx.deadline) {
      throw new Failure(`timed out waiting for ${what}` + (last ? ` (last seen: ${last})` : ''))
    }
    await sleep(200)
  }
}

function kafkaLogCreator () {
  return ({ namespace, label, log: entry }) => {
    const { message, ...rest } = entry
    process.stderr.write(`[kafkajs ${label}] ${namespace ? namespace + ': ' : ''}${message} ${JSON.stringify(rest)}\n`)
  }
}

let bootstrap = null
let kafka = null

function producer (ctx, options = {}) {
  const p = kafka.producer({ createPartitioner: Partitioners.DefaultPartitioner, ...options })
  ctx.clients.push(p)
  return p
}

function admin (ctx) {
  const a = kafka.admin()
  ctx.clients.push(a)
  return a
}

let groupSerial = 0

/**
 * A consumer of group `groupId` subscribed to `topic` collects every record it is given.
 * `afterRun(consumer)` runs right after consumer.run (the place for seek). Resolves once
 * `expected` records arrived and half a second more passed (to catch extra deliveries).
 */
async function consume (ctx, { topic, groupId, fromBeginning = true, expected, what, afterRun }) {
  const consumer = kafka.consumer({
    groupId: groupId || `${topic}-reader-${++groupSerial}`,
    sessionTimeout: 10000,
    rebalanceTimeout: 20000,
    heartbeatInterval: 1000,
    maxWaitTimeInMs: 200,
    retry: { retries: 8, initialRetryTime: 200, maxRetryTime: 2000 }
  })
  ctx.clients.push(consumer)
  const got = []
  const crashes = []
  consumer.on(consumer.events.CRASH, (e) => crashes.push(errText(e.payload.error)))
  await bounded(ctx, consumer.connect(), `${what}: consumer connect`)
  await bounded(ctx, consumer.subscribe({ topics: [topic], fromBeginning }), `${what}: subscribe`)
  await bounded(ctx, consumer.run({
    autoCommit: false,
    eachMessage: async ({ partition, message }) => {
      got.push({
        partition,
        offset: Number(message.offset),
        key: message.key === null ? null : message.key.toString(),
        value: message.value === null ? null : message.value.toString(),
        headers: message.headers,
        timestamp: message.timestamp,
        timestampType: message.batchContext && message.batchContext.timestampType
      })
    }
  }), `${what}: run`)
  if (afterRun) afterRun(consumer)
  await waitFor(ctx, `${what} to read ${expected} records`, () => {
    if (got.length >= expected) return true
    return `${got.length} read` + (crashes.length ? `, latest crash: ${crashes[crashes.length - 1]}` : '')
  })
  await sleep(500)
  return { consumer, got }
}

/** A consumer of a fresh group reads `topic` from the beginning. */
async function readBack (ctx, topic, expected) {
  const { consumer, got } = await consume(ctx, { topic, expected, what: 'read back' })
  await bounded(ctx, consumer.disconnect(), 'read back: disconnect', 15000)
  return got
}

/** Every value of `want` exactly once among `got` (and nothing else); returns value -> record. */
function exactlyOnce (got, want) {
  const wanted = new Set(want)
  const seen = new Map()
  for (const r of got) {
    check(wanted.has(r.value), `unexpected value ${abbreviate(r.value)} at partition ${r.partition} offset ${r.offset}`)
    const before = seen.get(r.value)
    check(before === undefined, `value ${abbreviate(r.value)} read twice (partition ${r.partition} offset ${r.offset} ` +
      `and partition ${before && before.partition} offset ${before && before.offset})`)
    seen.set(r.value, r)
  }
  for (const w of want) {
    check(seen.has(w), `value ${abbreviate(w)} missing (${seen.size} of ${want.length} read)`)
  }
  return seen
}

function abbreviate (s) {
  if (s === null || s === undefined) return String(s)
  return s.length <= 24 ? s : s.slice(0, 24) + '...'
}

function values (from, to) {
  const out = []
  for (let i = from; i < to; i++) out.push(`v${i}`)
  return out
}

/** Sends and checks every partition's acknowledgement. */
async function send (ctx, p, record, what = 'producer.send') {
  const res = await bounded(ctx, p.send(record), what)
  if (record.acks !== 0) {
    for (const r of res) {
      check(r.errorCode === 0, `${what}: partition ${r.partition} acknowledged with error code ${r.errorCode}`)
    }
  }
  return res
}

// --- scenarios (each resolves to the detail of a pass, or throws) ----------------------------

const scenarios = {
  async metadata (ctx, topic) {
    const a = admin(ctx)
    await bounded(ctx, a.connect(), 'admin connect')
    const md = await bounded(ctx, a.fetchTopicMetadata({ topics: [topic] }), 'fetchTopicMetadata')
    const t = md.topics.find((x) => x.name === topic)
    check(t, `metadata does not list ${topic}`)
    check(t.partitions.length === 3, `metadata lists ${t.partitions.length} partitions of ${topic}, expected 3`)
    const cluster = await bounded(ctx, a.describeCluster(), 'describeCluster')
    const brokers = new Map(cluster.brokers.map((b) => [b.nodeId, b]))
    const ids = t.partitions.map((p) => p.partitionId).sort()
    check(JSON.stringify(ids) === '[0,1,2]', `partition ids ${JSON.stringify(ids)}, expected [0,1,2]`)
    for (const p of t.partitions) {
      const b = brokers.get(p.leader)
      check(b, `partition ${p.partitionId}: leader ${p.leader} is not among the listed brokers ` +
        JSON.stringify(cluster.brokers))
      check(`${b.host}:${b.port}` === bootstrap, `partition ${p.partitionId}: leader ${p.leader} is at ` +
        `${b.host}:${b.port}, expected the bootstrap address ${bootstrap}`)
    }
    return '3 partitions, each led by a listed broker at the bootstrap address'
  },

  async 'produce.keys' (ctx, topic) {
    const messages = []
    for (let i = 0; i < 100; i++) messages.push({ key: `k${i % 10}`, value: `v${i}` })
    for (let i = 100; i < 105; i++) messages.push({ key: null, value: `v${i}` })
    const p = producer(ctx)
    await bounded(ctx, p.connect(), 'producer connect')
    await send(ctx, p, { topic, acks: -1, messages })
    const byValue = exactlyOnce(await readBack(ctx, topic, 105), values(0, 105))
    const partitionOfKey = new Map()
    const lastOffsetOfKey = new Map()
    for (let i = 0; i < 105; i++) {
      const r = byValue.get(`v${i}`)
      if (i >= 100) {
        check(r.key === null, `v${i} was sent with a null key, read back with key ${r.key}`)
        continue
      }
      const k = `k${i % 10}`
      check(r.key === k, `v${i} read back with key ${r.key}, expected ${k}`)
      const part = partitionOfKey.get(k)
      check(part === undefined || part === r.partition, `key ${k} in partitions ${part} and ${r.partition}`)
      partitionOfKey.set(k, r.partition)
      const last = lastOffsetOfKey.get(k)
      check(last === undefined || last < r.offset, `key ${k}: v${i} at offset ${r.offset}, not after the key's ` +
        `previous record at ${last}`)
      lastOffsetOfKey.set(k, r.offset)
    }
    return '105 records each once, 10 keys each in one partition in send order, null keys null'
  },

  async 'produce.headers' (ctx, topic) {
    const bin = Buffer.from([0x00, 0xff, 0x01])
    const messages = []
    for (let i = 0; i < 10; i++) messages.push({ value: `v${i}`, headers: { h1: ['a', 'b'], bin } })
    const p = producer(ctx)
    await bounded(ctx, p.connect(), 'producer connect')
    await send(ctx, p, { topic, acks: -1, messages })
    const got = await readBack(ctx, topic, 10)
    exactlyOnce(got, values(0, 10))
    const want = [['h1', Buffer.from('a')], ['h1', Buffer.from('b')], ['bin', bin]]
    for (const r of got) {
      // kafkajs hands headers over as an object: a repeated key's values as an array, in order.
      const flat = []
      for (const [k, v] of Object.entries(r.headers)) {
        for (const x of Array.isArray(v) ? v : [v]) flat.push([k, x])
      }
      const show = (l) => l.map(([k, v]) => `${k}=${Buffer.isBuffer(v) ? v.toString('hex') : v}`).join(', ')
      check(flat.length === want.length && flat.every(([k, v], j) => k === want[j][0] && Buffer.isBuffer(v) &&
        v.equals(want[j][1])), `${r.value}: headers ${show(flat)}, expected ${show(want)} (values in hex)`)
    }
    return '10 records, headers h1=a, h1=b, bin=00ff01 in order, byte-exact (kafkajs groups a repeated key into an array)'
  },

  async 'produce.timestamps' (ctx, topic) {
    const messages = []
    for (let i = 0; i < 10; i++) messages.push({ value: `v${i}`, timestamp: String(T0 + i * 1000) })
    const p = producer(ctx)
    await bounded(ctx, p.connect(), 'producer connect')
    await send(ctx, p, { topic, acks: -1, messages })
    const byValue = exactlyOnce(await readBack(ctx, topic, 10), values(0, 10))
    for (let i = 0; i < 10; i++) {
      const r = byValue.get(`v${i}`)
      check(r.timestamp === String(T0 + i * 1000), `v${i}: timestamp ${r.timestamp}, expected ${T0 + i * 1000}`)
      check(r.timestampType === 0, `v${i}: timestamp type ${r.timestampType}, expected 0 (CreateTime)`)
    }
    return '10 explicit timestamps read back, type CreateTime'
  },

  'produce.gzip': (ctx, topic) => produceCompressed(ctx, topic, 'gzip', CompressionTypes.GZIP),
  'produce.snappy': (ctx, topic) => produceCompressed(ctx, topic, 'snappy', CompressionTypes.Snappy),
  'produce.lz4': (ctx, topic) => produceCompressed(ctx, topic, 'lz4', CompressionTypes.LZ4),
  'produce.zstd': (ctx, topic) => produceCompressed(ctx, topic, 'zstd', CompressionTypes.ZSTD),

  'produce.acks0': (ctx, topic) => produceAcks(ctx, topic, 0),
  'produce.acks1': (ctx, topic) => produceAcks(ctx, topic, 1),
  'produce.acksall': (ctx, topic) => produceAcks(ctx, topic, -1),

  async 'produce.idempotent' (ctx, topic) {
    const messages = []
    for (let i = 0; i < 200; i++) messages.push({ partition: i % 3, value: `v${i}` })
    const p = producer(ctx, { idempotent: true, maxInFlightRequests: 1 })
    await bounded(ctx, p.connect(), 'producer connect')
    // Several requests, so that sequence numbers advance past the first batch.
    for (let i = 0; i < messages.length; i += 50) {
      await send(ctx, p, { topic, acks: -1, messages: messages.slice(i, i + 50) })
    }
    const got = await readBack(ctx, topic, 200)
    exactlyOnce(got, values(0, 200))
    const offsets = new Map()
    for (const r of got) {
      if (!offsets.has(r.partition)) offsets.set(r.partition, [])
      offsets.get(r.partition).push(r.offset)
    }
    for (const [partition, o] of offsets) {
      o.sort((x, y) => x - y)
      o.forEach((offset, j) => check(offset === j, `partition ${partition}: offsets not dense from 0 (position ${j} ` +
        `holds offset ${offset})`))
    }
    return 'idempotent producer: 200 records each once, offsets dense from 0 in each partition'
  },

  async 'consume.assign_seek' (ctx, topic) {
    const messages = []
    for (let i = 0; i < 50; i++) messages.push({ partition: 0, value: `v${i}` })
    const p = producer(ctx)
    await bounded(ctx, p.connect(), 'producer connect')
    const res = await send(ctx, p, { topic, acks: -1, messages })
    check(res.length === 1 && Number(res[0].baseOffset) === 0, `produce acknowledged ${JSON.stringify(res)}, ` +
      'expected partition 0 from offset 0')
    // No manual assignment in kafkajs: a fresh group's consumer (starting at the latest offset,
    // so that only the seek can bring it to offset 20) seeks partition 0 to 20.
    const { got } = await consume(ctx, {
      topic,
      fromBeginning: false,
      expected: 30,
      what: 'consumer after seek(20)',
      afterRun: (c) => c.seek({ topic, partition: 0, offset: '20' })
    })
    check(got.length === 30, `read ${got.length} records after seek(20), expected 30`)
    got.forEach((r, j) => check(r.partition === 0 && r.offset === 20 + j && r.value === `v${20 + j}`,
      `record ${j} after seek(20): partition ${r.partition} offset ${r.offset} value ${r.value}, expected ` +
      `partition 0 offset ${20 + j} value v${20 + j}`))
    return 'kafkajs has no assign(): a fresh group subscribed, seek(partition 0, 20) gave offsets 20..49 with v20..v49 in order'
  },

  async 'consume.from_beginning' (ctx, topic) {
    const messages = []
    for (let i = 0; i < 30; i++) messages.push({ partition: i % 3, value: `v${i}` })
    const p = producer(ctx)
    await bounded(ctx, p.connect(), 'producer connect')
    await send(ctx, p, { topic, acks: -1, messages })
    const { got } = await consume(ctx, { topic, fromBeginning: true, expected: 30, what: 'consumer fromBeginning' })
    exactlyOnce(got, values(0, 30))
    return 'fresh group with fromBeginning: true read all 30 records'
  },

  async 'consume.from_timestamp' (ctx, topic) {
    const messages = []
    for (let i = 0; i < 20; i++) messages.push({ partition: 0, value: `v${i}`, timestamp: String(T0 + i * 1000) })
    const p = producer(ctx)
    await bounded(ctx, p.connect(), 'producer connect')
    await send(ctx, p, { topic, acks: -1, messages })
    const a = admin(ctx)
    await bounded(ctx, a.connect(), 'admin connect')
    const found = await bounded(ctx, a.fetchTopicOffsetsByTimestamp(topic, T0 + 10000), 'fetchTopicOffsetsByTimestamp')
    const p0 = found.find((x) => x.partition === 0)
    check(p0 && String(p0.offset) === '10', `fetchTopicOffsetsByTimestamp(${T0 + 10000}) gave ${JSON.stringify(found)}, ` +
      'expected offset 10 for partition 0')
    const { got } = await consume(ctx, {
      topic,
      fromBeginning: false,
      expected: 10,
      what: 'consumer after seek to the offset found',
      afterRun: (c) => c.seek({ topic, partition: 0, offset: String(p0.offset) })
    })
    check(got[0].partition === 0 && got[0].value === 'v10', `first record after the seek: partition ${got[0].partition} ` +
      `offset ${got[0].offset} value ${got[0].value}, expected v10`)
    return 'fetchTopicOffsetsByTimestamp(T0+10000) = offset 10, first value v10'
  },

  async 'group.subscribe_commit_resume' (ctx, topic) {
    const groupId = `${topic}-group`
    const p = producer(ctx)
    await bounded(ctx, p.connect(), 'producer connect')
    const first = []
    for (let i = 0; i < 40; i++) first.push({ partition: i % 3, value: `v${i}` })
    const res = await send(ctx, p, { topic, acks: -1, messages: first })
    const ends = new Map()
    for (const r of res) ends.set(r.partition, Number(r.baseOffset) + first.filter((m) => m.partition === r.partition).length)

    const a = await consume(ctx, { topic, groupId, fromBeginning: true, expected: 40, what: 'consumer A' })
    exactlyOnce(a.got, values(0, 40))
    const next = new Map()
    for (const r of a.got) next.set(r.partition, Math.max(next.get(r.partition) || 0, r.offset + 1))
    await bounded(ctx, a.consumer.commitOffsets([...next].map(([partition, offset]) => ({ topic, partition, offset: String(offset) }))),
      'consumer A commitOffsets')
    const ad = admin(ctx)
    await bounded(ctx, ad.connect(), 'admin connect')
    const committed = await bounded(ctx, ad.fetchOffsets({ groupId, topics: [topic] }), 'fetchOffsets')
    for (const part of committed[0].partitions) {
      check(Number(part.offset) === ends.get(part.partition), `committed offset of partition ${part.partition} is ` +
        `${part.offset}, expected ${ends.get(part.partition)}`)
    }
    await bounded(ctx, a.consumer.disconnect(), 'consumer A disconnect', 15000)

    const second = []
    for (let i = 40; i < 50; i++) second.push({ partition: i % 3, value: `v${i}` })
    await send(ctx, p, { topic, acks: -1, messages: second })
    const b = await consume(ctx, { topic, groupId, fromBeginning: true, expected: 10, what: 'consumer B' })
    for (const r of b.got) {
      check(r.offset >= ends.get(r.partition), `consumer B read ${r.value} at partition ${r.partition} offset ` +
        `${r.offset}, below the committed offset ${ends.get(r.partition)}`)
    }
    exactlyOnce(b.got, values(40, 50))
    return 'consumer A read 40 and committed; consumer B of the group read exactly the 10 new records'
  },

  async 'admin.topics' (ctx, topic) {
    const created = `${topic}-new`
    const a = admin(ctx)
    await bounded(ctx, a.connect(), 'admin connect')
    const ok = await bounded(ctx, a.createTopics({
      topics: [{ topic: created, numPartitions: 2, replicationFactor: 1 }],
      waitForLeaders: true
    }), `createTopics(${created})`)
    check(ok === true, `createTopics(${created}) returned ${ok} (the topic existed already?)`)
    await waitFor(ctx, `metadata to list ${created} with 2 partitions`, async () => {
      const md = await a.fetchTopicMetadata()
      const t = md.topics.find((x) => x.name === created)
      return t && t.partitions.length === 2 ? true : t ? `${t.partitions.length} partitions` : 'not listed'
    })
    await bounded(ctx, a.deleteTopics({ topics: [created] }), `deleteTopics(${created})`)
    await waitFor(ctx, `metadata to stop listing ${created}`, async () =>
      (await a.listTopics()).includes(created) ? 'still listed' : true)
    return 'created with 2 partitions, listed, deleted, no longer listed'
  },

  async 'admin.configs' (ctx, topic) {
    const a = admin(ctx)
    await bounded(ctx, a.connect(), 'admin connect')
    const retention = async () => {
      const res = await bounded(ctx, a.describeConfigs({
        resources: [{ type: ConfigResourceTypes.TOPIC, name: topic, configNames: ['retention.ms'] }],
        includeSynonyms: false
      }), 'describeConfigs')
      const r = res.resources.find((x) => x.resourceName === topic)
      check(r && r.errorCode === 0, `describeConfigs: ${JSON.stringify(res.resources)}`)
      const e = r.configEntries.find((x) => x.configName === 'retention.ms')
      check(e, `describeConfigs has no retention.ms: ${JSON.stringify(r.configEntries)}`)
      return e.configValue
    }
    const before = await retention()
    check(before === '604800000', `retention.ms is ${before}, expected 604800000`)
    // kafkajs has AlterConfigs only (no incremental variant): it replaces the topic's overrides.
    await bounded(ctx, a.alterConfigs({
      resources: [{ type: ConfigResourceTypes.TOPIC, name: topic, configEntries: [{ name: 'retention.ms', value: '3600000' }] }]
    }), 'alterConfigs(retention.ms=3600000)')
    const after = await retention()
    check(after === '3600000', `retention.ms is ${after} after setting 3600000`)
    return 'retention.ms 604800000, set to 3600000 (alterConfigs), described as 3600000'
  },

  async 'admin.partitions' (ctx, topic) {
    const a = admin(ctx)
    await bounded(ctx, a.connect(), 'admin connect')
    await bounded(ctx, a.createPartitions({ topicPartitions: [{ topic, count: 5 }] }), `createPartitions(${topic} -> 5)`)
    await waitFor(ctx, 'metadata to show 5 partitions', async () => {
      const md = await a.fetchTopicMetadata({ topics: [topic] })
      const t = md.topics.find((x) => x.name === topic)
      return t && t.partitions.length === 5 ? true : t ? `${t.partitions.length} partitions` : 'not listed'
    })
    return 'grown from 3 to 5 partitions, metadata shows 5'
  }
}

function compressibleValue (i) {
  let s = `v${i}-`
  while (s.length < 100) s += 'abcdefghij'[s.length % 10]
  return s
}

async function produceCompressed (ctx, topic, name, type) {
  const missing = codecMissing[type]
  if (missing) {
    // A plugin that compat/node installs but that does not load is a broken setup, not a gap.
    throw missing.installed ? new Failure(missing.why) : new NotApplicable(missing.why)
  }
  const want = []
  for (let i = 0; i < 1000; i++) want.push(compressibleValue(i))
  const p = producer(ctx)
  await bounded(ctx, p.connect(), 'producer connect')
  for (let i = 0; i < want.length; i += 100) {
    await send(ctx, p, { topic, acks: -1, compression: type, messages: want.slice(i, i + 100).map((value) => ({ value })) })
  }
  exactlyOnce(await readBack(ctx, topic, 1000), want)
  return `1000 records compressed with ${name} read back byte-exact`
}

async function produceAcks (ctx, topic, acks) {
  const messages = []
  for (let i = 0; i < 200; i++) messages.push({ value: `v${i}` })
  const p = producer(ctx)
  await bounded(ctx, p.connect(), 'producer connect')
  await send(ctx, p, { topic, acks, messages })
  // With acks=0 nothing confirms the writes: the read back waits (bounded) until all are there.
  exactlyOnce(await readBack(ctx, topic, 200), values(0, 200))
  return `200 records with acks=${acks === -1 ? 'all' : acks} read back`
}

// --- main ------------------------------------------------------------------------------------

async function runScenario (scenario, topic) {
  const ctx = { deadline: Date.now() + INTERNAL_BUDGET_MS, clients: [], abandoned: false }
  const fn = Object.prototype.hasOwnProperty.call(scenarios, scenario) ? scenarios[scenario] : null
  let timer
  let result
  try {
    if (!fn) throw new Failure(`unknown scenario ${scenario}`)
    const limit = new Promise((resolve, reject) => {
      timer = setTimeout(() => reject(new Failure(`timed out after ${SCENARIO_LIMIT_MS / 1000} s`)),
        SCENARIO_LIMIT_MS - 4000)
    })
    const detail = await Promise.race([fn(ctx, topic), limit])
    result = { status: 'pass', detail }
  } catch (e) {
    if (e instanceof NotApplicable) {
      result = { status: 'n/a', detail: e.message }
    } else if (e instanceof Failure) {
      result = { status: 'fail', detail: e.message }
    } else {
      result = { status: 'fail', detail: errText(e) }
    }
  } finally {
    clearTimeout(timer)
    ctx.abandoned = true
    await Promise.all(ctx.clients.map((c) => {
      let t
      return Promise.race([c.disconnect().catch(() => {}), new Promise((resolve) => { t = setTimeout(resolve, 3000) })])
        .finally(() => clearTimeout(t))
    }))
  }
  return result
}

async function main () {
  const argv = process.argv.slice(2)
  if (argv.length < 3) {
    console.error('usage: node matrix.js BOOTSTRAP TOPIC_PREFIX SCENARIO [SCENARIO ...]')
    process.exit(2)
  }
  bootstrap = argv[0]
  const prefix = argv[1]
  kafka = new Kafka({
    clientId: 'strom-matrix-kafkajs',
    brokers: [bootstrap],
    logLevel: logLevel.WARN,
    logCreator: kafkaLogCreator,
    connectionTimeout: 5000,
    requestTimeout: 15000,
    retry: { retries: 8, initialRetryTime: 200, maxRetryTime: 2000 }
  })
  writeOut(`{"client": "kafkajs", "version": ${JSON.stringify(KAFKAJS_VERSION)}}`)
  for (const scenario of argv.slice(2)) {
    const start = Date.now()
    const topic = prefix + scenario.replace(/\./g, '-')
    const { status, detail } = await runScenario(scenario, topic)
    log(`${scenario}: ${status} in ${Date.now() - start} ms: ${detail}`)
    writeOut(`{"scenario": ${JSON.stringify(scenario)}, "status": ${JSON.stringify(status)}, ` +
      `"detail": ${JSON.stringify(String(detail))}}`)
  }
}

main().then(() => process.exit(0), (e) => {
  console.error('matrix.js: ' + errText(e) + (e && e.stack ? '\n' + e.stack : ''))
  process.exit(1)
})
