// A kafkajs consumer group against a running broker.
//
// Usage: node group_check.js BOOTSTRAP TOPIC GROUP [--timeout-s S]
// (kafkajs is found through NODE_PATH: scripts/setup-clients installs it in target/compat-node.)
//
// 1. The admin client creates TOPIC with 3 partitions; the kafkajs producer (acks=-1) sends 10
//    records to each partition.
// 2. Consumer 1 joins GROUP (subscribe + run, autoCommit off), reads every record exactly once,
//    commits with commitOffsets; admin.fetchOffsets shows the log end of each partition;
//    admin.describeGroups shows the group Stable with one member. Consumer 1 disconnects.
// 3. 5 more records per partition; consumer 2 joins GROUP (autoCommit on, fromBeginning: true,
//    which must not matter since the group has offsets) and reads exactly the new records;
//    its automatic commits bring admin.fetchOffsets to the new log end.
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
const { Kafka, logLevel, Partitioners } = kafkajs

class Failure extends Error {}
// A failure that no amount of waiting can repair: waitFor gives up at once.
class Fatal extends Failure {}

function check (cond, message) {
  if (!cond) throw new Failure(message)
}

function say (line) {
  console.log(line)
}

const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms))

function parseArgs (argv) {
  if (argv.length < 3) {
    console.error('usage: node group_check.js BOOTSTRAP TOPIC GROUP [--timeout-s S]')
    process.exit(2)
  }
  const args = { bootstrap: argv[0], topic: argv[1], group: argv[2], timeoutS: 90 }
  for (let i = 3; i < argv.length; i += 2) {
    if (argv[i] === '--timeout-s' && i + 1 < argv.length && Number(argv[i + 1]) > 0) {
      args.timeoutS = Number(argv[i + 1])
    } else {
      console.error('usage error: bad option ' + argv[i])
      process.exit(2)
    }
  }
  return args
}

const args = parseArgs(process.argv.slice(2))
const PARTITIONS = 3
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
      if (e instanceof Fatal) throw e
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

const kafka = new Kafka({
  clientId: 'strom-kafkajs-check',
  brokers: [args.bootstrap],
  logLevel: logLevel.ERROR,
  connectionTimeout: 5000,
  requestTimeout: 15000,
  retry: { retries: 8, initialRetryTime: 200, maxRetryTime: 2000 }
})

/** Sends `perPartition` records to each partition; returns Map "partition@offset" -> value, and the ends. */
async function produce (producer, prefix, perPartition) {
  const messages = []
  for (let i = 0; i < perPartition; i++) {
    for (let p = 0; p < PARTITIONS; p++) {
      const n = i * PARTITIONS + p
      messages.push({ partition: p, key: `k${n}`, value: `${prefix}-${n}` })
    }
  }
  const res = await bounded(producer.send({ topic: args.topic, acks: -1, messages }), 'producer.send')
  const base = new Map()
  for (const r of res) {
    check(r.errorCode === 0, `produce to partition ${r.partition} failed with error code ${r.errorCode}`)
    base.set(r.partition, Number(r.baseOffset))
  }
  check(base.size === PARTITIONS, `produce acknowledged ${base.size} partitions, expected ${PARTITIONS}: ${JSON.stringify(res)}`)
  const expected = new Map()
  const ends = new Map()
  const next = new Map(base)
  for (const m of messages) {
    const offset = next.get(m.partition)
    next.set(m.partition, offset + 1)
    expected.set(`${m.partition}@${offset}`, m.value)
    ends.set(m.partition, offset + 1)
  }
  say(`produced ${messages.length} records (${prefix}), base offsets ${JSON.stringify([...base])}`)
  return { expected, ends }
}

/** A consumer of the group that checks each record against `expected` (removing it). */
async function startConsumer (name, expected, runOptions) {
  const consumer = kafka.consumer({
    groupId: args.group,
    sessionTimeout: 10000,
    rebalanceTimeout: 20000,
    heartbeatInterval: 1000,
    // Short fetch waits: disconnect() waits for the fetch in flight.
    maxWaitTimeInMs: 500,
    retry: { retries: 8, initialRetryTime: 200, maxRetryTime: 2000 }
  })
  const state = { consumer, seen: new Set(), problems: [], joined: null, crashes: [], lastOffsets: new Map() }
  consumer.on(consumer.events.GROUP_JOIN, (e) => {
    state.joined = e.payload
    say(`${name}: joined ${e.payload.groupId} as ${e.payload.memberId} (leader: ${e.payload.isLeader}, ` +
      `protocol ${e.payload.groupProtocol}), assignment ${JSON.stringify(e.payload.memberAssignment)}`)
  })
  consumer.on(consumer.events.CRASH, (e) => {
    const err = e.payload.error
    state.crashes.push(`${err && err.name}: ${err && err.message}`)
    say(`${name}: consumer crashed (restart: ${e.payload.restart}): ${err && err.name}: ${err && err.message}`)
  })
  await bounded(consumer.connect(), `${name} connect`)
  await bounded(consumer.subscribe({ topics: [args.topic], fromBeginning: true }), `${name} subscribe`)
  await bounded(consumer.run({
    ...runOptions,
    eachMessage: async ({ topic, partition, message }) => {
      const key = `${partition}@${message.offset}`
      const value = message.value === null ? null : message.value.toString()
      if (topic !== args.topic) {
        state.problems.push(`${name} received a record of topic ${topic}`)
      } else if (state.seen.has(key)) {
        state.problems.push(`${name} received ${key} (${value}) a second time`)
      } else if (!expected.has(key)) {
        state.problems.push(`${name} received ${key} (${value}), which is not among the records expected now ` +
          '(already committed, or never produced)')
      } else if (expected.get(key) !== value) {
        state.problems.push(`${name} received ${key} with value ${value}, expected ${expected.get(key)}`)
      } else {
        expected.delete(key)
      }
      state.seen.add(key)
      state.lastOffsets.set(partition, Number(message.offset))
    }
  }), `${name} run`)
  return state
}

/** Waits until `expected` is empty, then a little longer to catch extra deliveries. */
async function consumeAll (name, state, expected) {
  await waitFor(`${name} to read ${expected.size} more records`, 60000, () => {
    if (state.problems.length > 0) throw new Fatal(state.problems.join('; '))
    if (expected.size > 0 && state.crashes.length > 0) {
      // Crashes are retried by kafkajs; report the latest one if the wait times out.
      throw new Failure(`latest crash: ${state.crashes[state.crashes.length - 1]}`)
    }
    return expected.size === 0
  })
  await sleep(1500)
  check(state.problems.length === 0, state.problems.join('; '))
  say(`${name}: read exactly the ${state.seen.size} expected records`)
}

async function committed (admin) {
  const res = await bounded(admin.fetchOffsets({ groupId: args.group, topics: [args.topic] }), 'admin.fetchOffsets')
  check(res.length === 1 && res[0].topic === args.topic, `fetchOffsets returned ${JSON.stringify(res)}`)
  const out = new Map()
  for (const p of res[0].partitions) out.set(p.partition, Number(p.offset))
  return out
}

function sameOffsets (got, ends) {
  if (got.size !== ends.size) return false
  for (const [p, o] of ends) if (got.get(p) !== o) return false
  return true
}

async function main () {
  const admin = kafka.admin()
  const producer = kafka.producer({ createPartitioner: Partitioners.DefaultPartitioner })
  let c1 = null
  let c2 = null
  try {
    await bounded(admin.connect(), 'admin connect')
    const created = await bounded(admin.createTopics({
      topics: [{ topic: args.topic, numPartitions: PARTITIONS, replicationFactor: 1 }],
      waitForLeaders: true
    }), 'admin.createTopics')
    check(created === true, `createTopics returned ${created} (the topic existed already?)`)
    say(`created topic ${args.topic} with ${PARTITIONS} partitions`)
    await bounded(producer.connect(), 'producer connect')

    const first = await produce(producer, 'first', 10)
    const before = await committed(admin)
    check([...before.values()].every((o) => o === -1), `group ${args.group} has offsets before any commit: ` +
      JSON.stringify([...before]))

    c1 = await startConsumer('consumer 1', first.expected, { autoCommit: false })
    await consumeAll('consumer 1', c1, first.expected)
    const toCommit = [...first.ends].map(([partition, end]) => ({ topic: args.topic, partition, offset: String(end) }))
    await bounded(c1.consumer.commitOffsets(toCommit), 'consumer 1 commitOffsets')
    const afterC1 = await committed(admin)
    check(sameOffsets(afterC1, first.ends), `fetchOffsets after consumer 1's commit: ${JSON.stringify([...afterC1])}, ` +
      `expected ${JSON.stringify([...first.ends])}`)
    say(`consumer 1 committed; admin.fetchOffsets: ${JSON.stringify([...afterC1])}`)

    const described = await bounded(admin.describeGroups([args.group]), 'admin.describeGroups')
    const g = described.groups.find((x) => x.groupId === args.group)
    check(g && g.errorCode === 0, `describeGroups: ${JSON.stringify(described)}`)
    check(g.state === 'Stable' && g.members.length === 1 && g.protocolType === 'consumer',
      `describeGroups while consumer 1 runs: state ${g.state}, ${g.members.length} members, protocol type ` +
      `${g.protocolType}, protocol ${g.protocol}`)
    check(c1.joined && g.members[0].memberId === c1.joined.memberId,
      `describeGroups member ${g.members[0].memberId}, consumer 1 joined as ${c1.joined && c1.joined.memberId}`)
    say(`admin.describeGroups: ${g.state}, member ${g.members[0].memberId}, protocol ${g.protocol}`)

    await bounded(c1.consumer.disconnect(), 'consumer 1 disconnect')
    c1 = null
    say('consumer 1 disconnected')

    const second = await produce(producer, 'second', 5)
    for (const [p, end] of first.ends) {
      check(second.expected.has(`${p}@${end}`), `new records on partition ${p} do not start at ${end}`)
    }
    c2 = await startConsumer('consumer 2', second.expected, { autoCommit: true })
    await consumeAll('consumer 2', c2, second.expected)
    for (const [p, end] of first.ends) {
      check(c2.seen.has(`${p}@${end}`), `consumer 2 did not start partition ${p} at the committed offset ${end}`)
    }
    const afterC2 = await waitFor('consumer 2\'s automatic commits to reach the log end', 20000, async () => {
      const got = await committed(admin)
      check(sameOffsets(got, second.ends), `fetchOffsets: ${JSON.stringify([...got])}, expected ` +
        JSON.stringify([...second.ends]))
      return got
    })
    say(`consumer 2 auto-committed; admin.fetchOffsets: ${JSON.stringify([...afterC2])}`)
    await bounded(c2.consumer.disconnect(), 'consumer 2 disconnect')
    c2 = null
    say('consumer 2 disconnected')
    const final = await committed(admin)
    check(sameOffsets(final, second.ends), `fetchOffsets after the group emptied: ${JSON.stringify([...final])}`)
  } finally {
    for (const c of [c1, c2]) {
      if (c) await bounded(c.consumer.disconnect(), 'consumer disconnect', 10000).catch(() => {})
    }
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
