package strommatrix

import (
	"fmt"
	"time"
)

// T0 is the first explicit timestamp the scenarios send (ms since the epoch).
const T0 = int64(1600000000000)

// Value is the value of record i: v<i>.
func Value(i int) string { return fmt.Sprintf("v%d", i) }

// Values is Value(from) .. Value(to-1).
func Values(from, to int) []string {
	var out []string
	for i := from; i < to; i++ {
		out = append(out, Value(i))
	}
	return out
}

// Key is the key of record i (0..99) of produce.keys: k0..k9 cycling.
func Key(i int) string { return fmt.Sprintf("k%d", i%10) }

// CompressibleValue is record i's 100-byte value of the produce.<codec> scenarios.
func CompressibleValue(i int) string {
	v := Value(i) + " "
	for len(v) < 100 {
		v += "compressible "
	}
	return v[:100]
}

// MsTime is the time of ms milliseconds since the epoch; Ms is the inverse.
func MsTime(ms int64) time.Time { return time.Unix(ms/1000, (ms%1000)*int64(time.Millisecond)) }
func Ms(t time.Time) int64      { return t.UnixNano() / int64(time.Millisecond) }

// Record is what the comparisons look at in a record read back; each program says how its
// client's message type maps to it.
type Record struct {
	Key, Value []byte
	Partition  int32
	Offset     int64
}

// ExactlyValues checks that the records read back (by partition) are exactly the values sent,
// each once, and indexes them by value.
func ExactlyValues[P comparable, M any](read map[P][]M, values []string,
	record func(M) Record) (map[string]M, error) {
	got := map[string]M{}
	seen := map[string]Record{}
	for _, msgs := range read {
		for _, m := range msgs {
			r := record(m)
			if prev, dup := seen[string(r.Value)]; dup {
				return nil, fmt.Errorf("value %q read twice (%d/%d and %d/%d)", trunc(r.Value), prev.Partition,
					prev.Offset, r.Partition, r.Offset)
			}
			seen[string(r.Value)] = r
			got[string(r.Value)] = m
		}
	}
	for _, v := range values {
		if _, ok := got[v]; !ok {
			return nil, fmt.Errorf("value %q not read back (%d of %d read)", trunc([]byte(v)), len(got), len(values))
		}
	}
	if len(got) != len(values) {
		return nil, fmt.Errorf("read back %d records, sent %d", len(got), len(values))
	}
	return got, nil
}

// ExactlyStrings is ExactlyValues for values read without their partitions and offsets (a
// group member's): a value read twice is reported at 0/0.
func ExactlyStrings(read, values []string) error {
	_, err := ExactlyValues(map[int32][]string{0: read}, values, func(v string) Record {
		return Record{Value: []byte(v)}
	})
	return err
}

func trunc(b []byte) string {
	if len(b) > 24 {
		return string(b[:24]) + "..."
	}
	return string(b)
}

// CheckSeek checks the records read after a seek to offset from of a partition that holds
// v0, v1, ... at offsets 0, 1, ...: record i is at offset from+i with value v<from+i>.
func CheckSeek[M any](from int, got []M, record func(M) Record) error {
	for i, m := range got {
		r := record(m)
		if r.Offset != int64(from+i) || string(r.Value) != Value(from+i) {
			return fmt.Errorf("record %d after the seek: offset %d value %q, want offset %d value %q", i, r.Offset,
				r.Value, from+i, Value(from+i))
		}
	}
	return nil
}

// CheckKeys checks the produce.keys records, indexed by value: records 0..99 have keys k0..k9
// cycling, each key's records are in one partition and in send order; records 100..104 have a
// null key.
func CheckKeys[M any](got map[string]M, record func(M) Record) error {
	keyPart := map[string]int32{}
	lastOffset := map[string]int64{}
	for i := 0; i < 105; i++ {
		m := record(got[Value(i)])
		if i >= 100 {
			if m.Key != nil {
				return fmt.Errorf("%s: key %q, sent a null key", Value(i), m.Key)
			}
			continue
		}
		key := Key(i)
		if m.Key == nil || string(m.Key) != key {
			return fmt.Errorf("%s: key %q, sent %q", Value(i), m.Key, key)
		}
		if p, seen := keyPart[key]; seen && p != m.Partition {
			return fmt.Errorf("key %s in partitions %d and %d", key, p, m.Partition)
		}
		if last, seen := lastOffset[key]; seen && m.Offset <= last {
			return fmt.Errorf("key %s: %s at offset %d, not after the previous record's %d", key, Value(i), m.Offset, last)
		}
		keyPart[key] = m.Partition
		lastOffset[key] = m.Offset
	}
	return nil
}
