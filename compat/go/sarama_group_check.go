// sarama_group_check drives a strom broker with Debian's sarama (1.22, GOPATH build) and checks
// the classic consumer-group protocol at the old request versions that sarama speaks:
//
//   - a sarama ClusterAdmin creates the topic (CreateTopics v2) and a SyncProducer writes keyed
//     records to it (Produce v3, acks=all): dense offsets per partition;
//   - a ConsumerGroup member alone reads every record once (Consumer.Offsets.Initial =
//     OffsetOldest), marks it, and its marked offsets get committed;
//   - a second member joins: after the rebalance every partition is claimed by exactly one member
//     (also as DescribeGroups v0 reports it), both resume at the committed offsets, and new
//     records are read once, each by the owner of its partition;
//   - after both close, the committed offsets are the partitions' end offsets; a new member of
//     the group starts exactly at those offsets and reads only the records produced since;
//   - the group members sent FindCoordinator v0, JoinGroup v1, SyncGroup v0, Heartbeat v0,
//     OffsetCommit v1, OffsetFetch v1 and LeaveGroup v0, and no other version of these (every
//     client dials through a recording net.Conn that reads the request headers it writes).
//
// Every wait is bounded by a deadline derived from -timeout-s. Prints one line per step, "OK" at
// the end, and exits 1 on the first failed check (any error sarama reports counts).
//
// The group members use config.Version -group-version, 0.11.0.0 by default. sarama 1.22 derives
// every request version from it: at 0.10.2.0 its consumer fetches with Fetch v3 (message format
// v1), which strom does not serve (it serves Fetch 4+), so the members could not read anything.
// Its group requests are the same at 0.10.2.0 and 0.11.0.0 (JoinGroup v1 from 0.10.1.0 on; the
// others are fixed). OffsetCommit is v1: Consumer.Offsets.Retention keeps sarama's default of 0
// (a retention would make it v2). The admin and
// producer clients use 1.0.0.0 (CreateTopics v2, Produce v3 with record batches).
package main

import (
	"context"
	"flag"
	"fmt"
	"io/ioutil"
	"log"
	"os"
	"sort"
	"strings"
	"sync"
	"time"

	"strommatrix"

	"github.com/Shopify/sarama"
)

const partitions = 3

var (
	bootstrap    = flag.String("bootstrap", "127.0.0.1:9092", "broker address")
	topic        = flag.String("topic", "sarama-group-check", "topic to create and use")
	group        = flag.String("group", "sarama-group-check-group", "consumer group id")
	records      = flag.Int("records", 300, "records produced before the first member starts")
	timeoutS     = flag.Int("timeout-s", 50, "overall time limit in seconds")
	groupVersion = flag.String("group-version", "0.11.0.0", "sarama config.Version of the group members")
	clientLog    = flag.Bool("sarama-log", false, "print sarama's own log lines to stderr")

	deadline time.Time
	start    = time.Now()
)

func say(format string, args ...interface{}) {
	fmt.Printf("[%5.1fs] %s\n", time.Since(start).Seconds(), fmt.Sprintf(format, args...))
}

func fail(format string, args ...interface{}) {
	fmt.Printf("[%5.1fs] FAIL: %s\n", time.Since(start).Seconds(), fmt.Sprintf(format, args...))
	os.Exit(1)
}

func check(cond bool, format string, args ...interface{}) {
	if !cond {
		fail(format, args...)
	}
}

func must(err error, what string) {
	if err != nil {
		fail("%s: %v", what, err)
	}
}

// waitFor polls cond until it holds; fails after limit or at the overall deadline.
func waitFor(what string, limit time.Duration, cond func() bool) {
	began := time.Now()
	until := began.Add(limit)
	if until.After(deadline) {
		until = deadline
	}
	for !cond() {
		if time.Now().After(until) {
			fail("timed out after %.1f s waiting for %s", time.Since(began).Seconds(), what)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func baseConfig(clientID, role string, version sarama.KafkaVersion) *sarama.Config {
	c := sarama.NewConfig()
	c.ClientID = clientID
	c.Version = version
	// Not a proxy: a dialer that records the (API key, version) of every request sent.
	c.Net.Proxy.Enable = true
	c.Net.Proxy.Dialer = strommatrix.RecordingDialer{Sent: func(key, version int16) {
		recordSent(role, key, version)
	}}
	c.Net.DialTimeout = 5 * time.Second
	c.Net.ReadTimeout = 20 * time.Second
	c.Net.WriteTimeout = 5 * time.Second
	c.Metadata.Retry.Max = 5
	c.Metadata.Retry.Backoff = 200 * time.Millisecond
	return c
}

func groupConfig(version sarama.KafkaVersion, name string) *sarama.Config {
	c := baseConfig("sarama-group-check-"+name, "group member", version)
	c.Consumer.Return.Errors = true
	c.Consumer.Offsets.Initial = sarama.OffsetOldest
	c.Consumer.Offsets.CommitInterval = 200 * time.Millisecond
	// Consumer.Offsets.Retention stays at sarama's default (0), with which sarama 1.22 sends
	// OffsetCommit v1, as an unmodified application does.
	c.Consumer.MaxWaitTime = 200 * time.Millisecond
	c.Consumer.Group.Session.Timeout = 10 * time.Second
	c.Consumer.Group.Heartbeat.Interval = 300 * time.Millisecond
	c.Consumer.Group.Rebalance.Timeout = 15 * time.Second
	c.Consumer.Group.Rebalance.Retry.Backoff = 300 * time.Millisecond
	c.Consumer.Group.Rebalance.Strategy = sarama.BalanceStrategyRange
	return c
}

// --- what was produced ------------------------------------------------------------------------

type position struct {
	partition int32
	offset    int64
}

type produced struct {
	key, value string
	phase      int
}

var (
	producedMu sync.Mutex
	producedAt = map[position]produced{}
)

func produce(p sarama.SyncProducer, client sarama.Client, phase, n int) {
	before := endOffsets(client)
	perPartition := map[int32][]int64{}
	for i := 0; i < n; i++ {
		if time.Now().After(deadline) {
			fail("phase %d: produced %d of %d records before the deadline", phase, i, n)
		}
		key := fmt.Sprintf("key-%d-%d", phase, i)
		value := fmt.Sprintf("value-%d-%d-%s", phase, i, strings.Repeat("x", i%17))
		part, off, err := p.SendMessage(&sarama.ProducerMessage{
			Topic: *topic,
			Key:   sarama.StringEncoder(key),
			Value: sarama.StringEncoder(value),
		})
		must(err, fmt.Sprintf("phase %d: SendMessage %d", phase, i))
		producedMu.Lock()
		if prev, dup := producedAt[position{part, off}]; dup {
			fail("phase %d: record %d acknowledged at %d/%d, where %q already was", phase, i, part, off, prev.key)
		}
		producedAt[position{part, off}] = produced{key, value, phase}
		producedMu.Unlock()
		perPartition[part] = append(perPartition[part], off)
	}
	after := endOffsets(client)
	for part := int32(0); part < partitions; part++ {
		offs := perPartition[part]
		check(len(offs) > 0, "phase %d: no record went to partition %d (hash partitioner, %d keys)", phase, part, n)
		for j, off := range offs {
			check(off == before[part]+int64(j), "phase %d: partition %d: record %d acknowledged at offset %d, want %d (dense)",
				phase, part, j, off, before[part]+int64(j))
		}
		check(after[part] == before[part]+int64(len(offs)), "phase %d: partition %d end offset %d, want %d",
			phase, part, after[part], before[part]+int64(len(offs)))
	}
	say("phase %d: produced %d keyed records (SyncProducer, acks=all): %s", phase, n, describeCounts(perPartition))
}

func describeCounts(m map[int32][]int64) string {
	parts := []string{}
	for part := int32(0); part < partitions; part++ {
		offs := m[part]
		if len(offs) == 0 {
			parts = append(parts, fmt.Sprintf("p%d: none", part))
		} else {
			parts = append(parts, fmt.Sprintf("p%d: %d at %d..%d", part, len(offs), offs[0], offs[len(offs)-1]))
		}
	}
	return strings.Join(parts, ", ")
}

func endOffsets(client sarama.Client) map[int32]int64 {
	out := map[int32]int64{}
	for part := int32(0); part < partitions; part++ {
		off, err := client.GetOffset(*topic, part, sarama.OffsetNewest)
		must(err, fmt.Sprintf("ListOffsets latest for partition %d", part))
		out[part] = off
	}
	return out
}

// committedOffsets asks the group coordinator (OffsetFetch v1) for the group's offsets.
func committedOffsets(client sarama.Client) map[int32]int64 {
	must(client.RefreshCoordinator(*group), "FindCoordinator")
	coord, err := client.Coordinator(*group)
	must(err, "coordinator")
	req := &sarama.OffsetFetchRequest{Version: 1, ConsumerGroup: *group}
	for part := int32(0); part < partitions; part++ {
		req.AddPartition(*topic, part)
	}
	resp, err := coord.FetchOffset(req)
	must(err, "OffsetFetch v1")
	out := map[int32]int64{}
	for part := int32(0); part < partitions; part++ {
		block := resp.GetBlock(*topic, part)
		check(block != nil, "OffsetFetch: no block for partition %d", part)
		check(block.Err == sarama.ErrNoError, "OffsetFetch partition %d: %v", part, block.Err)
		out[part] = block.Offset
	}
	return out
}

// --- group members ------------------------------------------------------------------------------

type consumed struct {
	position
	key, value string
	member     string
	generation int32
}

var (
	consumedMu  sync.Mutex
	consumedAll []consumed
)

type session struct {
	generation int32
	memberID   string
	claims     []int32
	initial    map[int32]int64 // claim.InitialOffset() per partition
	first      map[int32]int64 // first offset delivered per partition in this session
	active     bool
}

type member struct {
	name    string
	cg      sarama.ConsumerGroup
	cancel  context.CancelFunc
	done    chan struct{}
	mu      sync.Mutex
	current session
	history []session
	errs    []error
}

func (m *member) Setup(s sarama.ConsumerGroupSession) error {
	claims := append([]int32(nil), s.Claims()[*topic]...)
	sort.Slice(claims, func(i, j int) bool { return claims[i] < claims[j] })
	m.mu.Lock()
	m.current = session{generation: s.GenerationID(), memberID: s.MemberID(), claims: claims,
		initial: map[int32]int64{}, first: map[int32]int64{}, active: true}
	m.mu.Unlock()
	say("member %s: generation %d, member id %q, claims partitions %v", m.name, s.GenerationID(), s.MemberID(), claims)
	return nil
}

func (m *member) Cleanup(s sarama.ConsumerGroupSession) error {
	m.mu.Lock()
	m.current.active = false
	m.history = append(m.history, m.current)
	m.mu.Unlock()
	return nil
}

func (m *member) ConsumeClaim(s sarama.ConsumerGroupSession, claim sarama.ConsumerGroupClaim) error {
	m.mu.Lock()
	m.current.initial[claim.Partition()] = claim.InitialOffset()
	m.mu.Unlock()
	for msg := range claim.Messages() {
		m.mu.Lock()
		if _, seen := m.current.first[msg.Partition]; !seen {
			m.current.first[msg.Partition] = msg.Offset
		}
		m.mu.Unlock()
		consumedMu.Lock()
		consumedAll = append(consumedAll, consumed{position{msg.Partition, msg.Offset}, string(msg.Key),
			string(msg.Value), m.name, s.GenerationID()})
		consumedMu.Unlock()
		s.MarkMessage(msg, "")
	}
	return nil
}

func (m *member) snapshot() session {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.current
}

func startMember(name string, version sarama.KafkaVersion) *member {
	cg, err := sarama.NewConsumerGroup([]string{*bootstrap}, *group, groupConfig(version, name))
	must(err, "NewConsumerGroup "+name)
	ctx, cancel := context.WithCancel(context.Background())
	m := &member{name: name, cg: cg, cancel: cancel, done: make(chan struct{})}
	go func() {
		for err := range cg.Errors() {
			m.mu.Lock()
			m.errs = append(m.errs, err)
			m.mu.Unlock()
			say("member %s: sarama reported an error: %v", name, err)
		}
	}()
	go func() {
		defer close(m.done)
		for ctx.Err() == nil {
			if err := cg.Consume(ctx, []string{*topic}, m); err != nil {
				m.mu.Lock()
				m.errs = append(m.errs, fmt.Errorf("Consume: %v", err))
				m.mu.Unlock()
				say("member %s: Consume returned %v", name, err)
				select {
				case <-ctx.Done():
				case <-time.After(300 * time.Millisecond):
				}
			}
		}
	}()
	say("member %s: started (sarama ConsumerGroup, config.Version %s)", name, version)
	return m
}

// stopMembers ends the members' sessions (their marked offsets are committed on the way out),
// then closes them (LeaveGroup).
func stopMembers(ms ...*member) {
	for _, m := range ms {
		m.cancel()
	}
	for _, m := range ms {
		select {
		case <-m.done:
		case <-time.After(time.Until(deadline)):
			fail("member %s: Consume did not return after its context was cancelled", m.name)
		}
	}
	for _, m := range ms {
		closed := make(chan error, 1)
		go func(m *member) { closed <- m.cg.Close() }(m)
		select {
		case err := <-closed:
			must(err, "member "+m.name+": Close")
		case <-time.After(time.Until(deadline)):
			fail("member %s: Close did not return", m.name)
		}
		say("member %s: closed (LeaveGroup)", m.name)
	}
	for _, m := range ms {
		m.mu.Lock()
		errs := m.errs
		m.mu.Unlock()
		check(len(errs) == 0, "member %s: sarama reported %d error(s), first: %v", m.name, len(errs), firstErr(errs))
	}
}

func firstErr(errs []error) error {
	if len(errs) == 0 {
		return nil
	}
	return errs[0]
}

func consumedCount(phase int) int {
	consumedMu.Lock()
	defer consumedMu.Unlock()
	n := 0
	for _, c := range consumedAll {
		if strings.HasPrefix(c.value, fmt.Sprintf("value-%d-", phase)) {
			n++
		}
	}
	return n
}

// checkConsumed verifies that every consumed record is the one produced at its position, that
// nothing was delivered twice, and that each phase in `complete` was read in full.
func checkConsumed(complete ...int) {
	consumedMu.Lock()
	defer consumedMu.Unlock()
	producedMu.Lock()
	defer producedMu.Unlock()
	seen := map[position]consumed{}
	for _, c := range consumedAll {
		p, ok := producedAt[c.position]
		check(ok, "member %s read %d/%d (%q), which nobody produced", c.member, c.partition, c.offset, c.key)
		check(p.key == c.key && p.value == c.value, "member %s read %d/%d as %q=%q, produced %q=%q",
			c.member, c.partition, c.offset, c.key, c.value, p.key, p.value)
		if prev, dup := seen[c.position]; dup {
			fail("%d/%d delivered twice: to member %s (generation %d) and member %s (generation %d)",
				c.partition, c.offset, prev.member, prev.generation, c.member, c.generation)
		}
		seen[c.position] = c
	}
	for _, phase := range complete {
		for pos, p := range producedAt {
			if p.phase == phase {
				_, ok := seen[pos]
				check(ok, "phase %d record %q at %d/%d was never delivered", phase, p.key, pos.partition, pos.offset)
			}
		}
	}
}

func parseVersion(s string) sarama.KafkaVersion {
	v, err := sarama.ParseKafkaVersion(s)
	must(err, "-group-version")
	return v
}

func main() {
	flag.Parse()
	deadline = start.Add(time.Duration(*timeoutS) * time.Second)
	if *clientLog {
		sarama.Logger = log.New(os.Stderr, "[sarama] ", log.Ltime|log.Lmicroseconds)
	} else {
		sarama.Logger = log.New(ioutil.Discard, "", 0)
	}
	gv := parseVersion(*groupVersion)
	say("sarama group check: bootstrap %s, topic %s, group %s, group members at config.Version %s",
		*bootstrap, *topic, *group, gv)

	// A watchdog, in case a sarama call blocks past the deadline.
	go func() {
		time.Sleep(time.Until(deadline) + 2*time.Second)
		fail("overall deadline of %d s exceeded", *timeoutS)
	}()

	// --- topic and producer ---------------------------------------------------------------------
	adminCfg := baseConfig("sarama-group-check-admin", "admin", sarama.V1_0_0_0)
	adminCfg.Admin.Timeout = 10 * time.Second
	admin, err := sarama.NewClusterAdmin([]string{*bootstrap}, adminCfg)
	must(err, "NewClusterAdmin")
	must(admin.CreateTopic(*topic, &sarama.TopicDetail{NumPartitions: partitions, ReplicationFactor: 1}, false),
		"CreateTopic")
	must(admin.Close(), "ClusterAdmin Close")

	prodCfg := baseConfig("sarama-group-check-producer", "producer", sarama.V1_0_0_0)
	prodCfg.Producer.Return.Successes = true
	prodCfg.Producer.RequiredAcks = sarama.WaitForAll
	prodCfg.Producer.Timeout = 10 * time.Second
	prodCfg.Producer.Retry.Max = 3
	prodClient, err := sarama.NewClient([]string{*bootstrap}, prodCfg)
	must(err, "NewClient (producer)")
	waitFor("the new topic's 3 partitions in the metadata", 15*time.Second, func() bool {
		if prodClient.RefreshMetadata(*topic) != nil {
			return false
		}
		ps, err := prodClient.Partitions(*topic)
		return err == nil && len(ps) == partitions
	})
	say("created topic %s with %d partitions (ClusterAdmin, CreateTopics v2)", *topic, partitions)
	producer, err := sarama.NewSyncProducerFromClient(prodClient)
	must(err, "NewSyncProducer")

	// The group members' own version, for the coordinator queries below.
	groupClient, err := sarama.NewClient([]string{*bootstrap}, baseConfig("sarama-group-check-probe", "probe", gv))
	must(err, "NewClient (probe)")

	produce(producer, prodClient, 1, *records)

	// --- one member reads everything ------------------------------------------------------------
	a := startMember("A", gv)
	waitFor(fmt.Sprintf("member A to read the %d phase-1 records", *records), 20*time.Second, func() bool {
		return consumedCount(1) >= *records
	})
	checkConsumed(1)
	sa := a.snapshot()
	check(fmt.Sprint(sa.claims) == "[0 1 2]", "member A alone claims %v, want [0 1 2]", sa.claims)
	for part := int32(0); part < partitions; part++ {
		check(sa.first[part] == 0, "member A started partition %d at offset %d, want 0 (OffsetOldest, nothing committed)",
			part, sa.first[part])
	}
	say("member A read all %d phase-1 records exactly once, each partition from offset 0", *records)
	end1 := endOffsets(prodClient)
	waitFor("member A's marked offsets to be committed (every 200 ms)", 10*time.Second, func() bool {
		c := committedOffsets(groupClient)
		return fmt.Sprint(c) == fmt.Sprint(end1)
	})
	say("committed offsets (OffsetFetch v1) = end offsets %v while member A runs", end1)

	// --- a second member: the partitions are split ----------------------------------------------
	b := startMember("B", gv)
	var settled [2]session
	waitFor("members A and B in one generation with all partitions claimed", 25*time.Second, func() bool {
		sa, sb := a.snapshot(), b.snapshot()
		if !sa.active || !sb.active || sa.generation != sb.generation || sa.generation <= a.history0Gen(sa) {
			return false
		}
		settled = [2]session{sa, sb}
		return true
	})
	sa, sb := settled[0], settled[1]
	owner := map[int32]string{}
	for _, s := range []struct {
		name   string
		claims []int32
	}{{"A", sa.claims}, {"B", sb.claims}} {
		check(len(s.claims) > 0, "member %s claims no partition after the rebalance", s.name)
		for _, part := range s.claims {
			if prev, taken := owner[part]; taken {
				fail("partition %d claimed by both %s and %s in generation %d", part, prev, s.name, sa.generation)
			}
			owner[part] = s.name
		}
	}
	check(len(owner) == partitions, "generation %d: claimed partitions %v, want all %d", sa.generation, owner, partitions)
	say("generation %d: A claims %v, B claims %v: every partition has exactly one owner", sa.generation, sa.claims, sb.claims)
	describeGroup(groupClient, map[string][]int32{sa.memberID: sa.claims, sb.memberID: sb.claims})

	// Nothing committed is read again: each member starts its partitions at the committed offsets.
	for _, mem := range []*member{a, b} {
		for _, part := range mem.snapshot().claims {
			waitFor(fmt.Sprintf("member %s's claim on partition %d to start", mem.name, part), 10*time.Second, func() bool {
				_, ok := mem.snapshot().initial[part]
				return ok
			})
		}
	}
	sa, sb = a.snapshot(), b.snapshot()
	for _, s := range []struct {
		name string
		s    session
	}{{"A", sa}, {"B", sb}} {
		for _, part := range s.s.claims {
			check(s.s.initial[part] == end1[part], "member %s resumed partition %d at %d after the rebalance, committed %d",
				s.name, part, s.s.initial[part], end1[part])
		}
	}
	say("after the rebalance both members resume at the committed offsets %v", end1)

	produce(producer, prodClient, 2, *records/2)
	waitFor(fmt.Sprintf("members A and B to read the %d phase-2 records", *records/2), 20*time.Second, func() bool {
		return consumedCount(2) >= *records/2
	})
	checkConsumed(1, 2)
	consumedMu.Lock()
	for _, c := range consumedAll {
		if strings.HasPrefix(c.value, "value-2-") && owner[c.partition] != c.member {
			consumedMu.Unlock()
			fail("phase-2 record %d/%d read by member %s, but partition %d belongs to %s",
				c.partition, c.offset, c.member, c.partition, owner[c.partition])
		}
	}
	consumedMu.Unlock()
	check(a.snapshot().generation == sa.generation && b.snapshot().generation == sa.generation,
		"an unexpected rebalance happened while A and B were reading (generation %d -> A %d, B %d)",
		sa.generation, a.snapshot().generation, b.snapshot().generation)
	say("phase-2 records read exactly once, each by its partition's owner; nothing committed was redelivered")

	stopMembers(a, b)
	end2 := endOffsets(prodClient)
	c2 := committedOffsets(groupClient)
	check(fmt.Sprint(c2) == fmt.Sprint(end2), "after A and B closed: committed %v, end offsets %v", c2, end2)
	say("after A and B closed: committed offsets = end offsets %v", end2)

	// --- a new member resumes exactly at the committed offsets ----------------------------------
	produce(producer, prodClient, 3, *records/3)
	c := startMember("C", gv)
	waitFor(fmt.Sprintf("member C to read the %d phase-3 records", *records/3), 20*time.Second, func() bool {
		return consumedCount(3) >= *records/3
	})
	checkConsumed(1, 2, 3)
	sc := c.snapshot()
	check(fmt.Sprint(sc.claims) == "[0 1 2]", "member C alone claims %v, want [0 1 2]", sc.claims)
	for part := int32(0); part < partitions; part++ {
		check(sc.initial[part] == c2[part], "member C's claim on partition %d starts at %d, committed %d",
			part, sc.initial[part], c2[part])
		check(sc.first[part] == c2[part], "member C's first record on partition %d is at %d, committed %d",
			part, sc.first[part], c2[part])
	}
	say("member C started every partition at the committed offset %v and read only the %d new records", c2, *records/3)
	stopMembers(c)
	end3 := endOffsets(prodClient)
	c3 := committedOffsets(groupClient)
	check(fmt.Sprint(c3) == fmt.Sprint(end3), "after C closed: committed %v, end offsets %v", c3, end3)
	say("after C closed: committed offsets = end offsets %v", end3)

	must(producer.Close(), "producer Close")
	must(groupClient.Close(), "probe client Close")
	checkRequestVersions()
	say("OK")
}

// --- which request versions sarama sent -------------------------------------------------------

var (
	sentMu sync.Mutex
	sent   = map[string]map[int16]map[int16]int{} // role -> API key -> version -> requests
)

// recordSent counts a request of a client of role (the clients' strommatrix.RecordingDialer).
func recordSent(role string, key, version int16) {
	sentMu.Lock()
	defer sentMu.Unlock()
	if sent[role] == nil {
		sent[role] = map[int16]map[int16]int{}
	}
	if sent[role][key] == nil {
		sent[role][key] = map[int16]int{}
	}
	sent[role][key][version]++
}

// checkRequestVersions prints the requests each role sent and checks that the group members used
// exactly the old group API versions this check is about.
func checkRequestVersions() {
	sentMu.Lock()
	defer sentMu.Unlock()
	roles := []string{}
	for role := range sent {
		roles = append(roles, role)
	}
	sort.Strings(roles)
	for _, role := range roles {
		keys := []int{}
		for key := range sent[role] {
			keys = append(keys, int(key))
		}
		sort.Ints(keys)
		parts := []string{}
		for _, key := range keys {
			versions := []int{}
			for v := range sent[role][int16(key)] {
				versions = append(versions, int(v))
			}
			sort.Ints(versions)
			for _, v := range versions {
				parts = append(parts, fmt.Sprintf("%s v%d x%d", strommatrix.APIName(int16(key)), v,
					sent[role][int16(key)][int16(v)]))
			}
		}
		say("requests sent by the %s clients: %s", role, strings.Join(parts, ", "))
	}
	want := map[int16]int16{10: 0, 11: 1, 14: 0, 12: 0, 8: 1, 9: 1, 13: 0}
	for _, key := range []int16{10, 11, 14, 12, 8, 9, 13} {
		versions := sent["group member"][key]
		check(len(versions) == 1 && versions[want[key]] > 0, "group members sent %s at versions %v, want only v%d",
			strommatrix.APIName(key), versions, want[key])
	}
	say("group members used FindCoordinator v0, JoinGroup v1, SyncGroup v0, Heartbeat v0, OffsetCommit v1, OffsetFetch v1, LeaveGroup v0")
}

// history0Gen is the generation of member A's session before B joined (its first session).
func (m *member) history0Gen(cur session) int32 {
	m.mu.Lock()
	defer m.mu.Unlock()
	if len(m.history) == 0 {
		return cur.generation // still in its first session: not settled yet
	}
	return m.history[0].generation
}

// describeGroup checks DescribeGroups v0: the group is Stable with exactly these members and
// assignments.
func describeGroup(client sarama.Client, want map[string][]int32) {
	coord, err := client.Coordinator(*group)
	must(err, "coordinator")
	resp, err := coord.DescribeGroups(&sarama.DescribeGroupsRequest{Groups: []string{*group}})
	must(err, "DescribeGroups v0")
	check(len(resp.Groups) == 1, "DescribeGroups: %d groups, want 1", len(resp.Groups))
	g := resp.Groups[0]
	check(g.Err == sarama.ErrNoError, "DescribeGroups: %v", g.Err)
	check(g.State == "Stable" && g.ProtocolType == "consumer" && g.Protocol == "range",
		"DescribeGroups: state %q, protocol type %q, protocol %q; want Stable, consumer, range",
		g.State, g.ProtocolType, g.Protocol)
	check(len(g.Members) == len(want), "DescribeGroups: %d members, want %d", len(g.Members), len(want))
	for id, claims := range want {
		desc, ok := g.Members[id]
		check(ok, "DescribeGroups: member %q missing", id)
		assignment, err := desc.GetMemberAssignment()
		must(err, "DescribeGroups: member assignment of "+id)
		got := append([]int32(nil), assignment.Topics[*topic]...)
		sort.Slice(got, func(i, j int) bool { return got[i] < got[j] })
		check(fmt.Sprint(got) == fmt.Sprint(claims), "DescribeGroups: member %q assigned %v, it claims %v", id, got, claims)
	}
	say("DescribeGroups v0: Stable, protocol range, both members with the partitions they claim")
}
