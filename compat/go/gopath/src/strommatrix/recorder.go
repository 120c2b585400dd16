package strommatrix

import (
	"fmt"
	"net"
	"time"
)

var apiNames = map[int16]string{0: "Produce", 1: "Fetch", 2: "ListOffsets", 3: "Metadata", 8: "OffsetCommit",
	9: "OffsetFetch", 10: "FindCoordinator", 11: "JoinGroup", 12: "Heartbeat", 13: "LeaveGroup", 14: "SyncGroup",
	15: "DescribeGroups", 16: "ListGroups", 18: "ApiVersions", 19: "CreateTopics", 20: "DeleteTopics",
	22: "InitProducerId", 32: "DescribeConfigs", 33: "AlterConfigs", 37: "CreatePartitions", 42: "DeleteGroups"}

// APIName names an API key (the ones sarama sends), "api<key>" when it has no name here.
func APIName(key int16) string {
	if name, ok := apiNames[key]; ok {
		return name
	}
	return fmt.Sprintf("api%d", key)
}

// RecordingDialer dials TCP (5 s timeout) with connections that call Sent with the API key and
// version of every request written to them. It is a sarama Config.Net.Proxy.Dialer (not a proxy).
type RecordingDialer struct {
	Sent func(key, version int16)
}

func (d RecordingDialer) Dial(network, addr string) (net.Conn, error) {
	conn, err := (&net.Dialer{Timeout: 5 * time.Second}).Dial(network, addr)
	if err != nil {
		return nil, err
	}
	return &recordingConn{Conn: conn, sent: d.Sent}, nil
}

// recordingConn parses its outgoing byte stream into frames (4-byte size, then api_key and
// api_version).
type recordingConn struct {
	net.Conn
	sent func(key, version int16)
	head []byte // the first bytes of the current frame, until its api_version
	skip int    // bytes of the current frame still to pass
}

func (c *recordingConn) Write(p []byte) (int, error) {
	n, err := c.Conn.Write(p)
	for rest := p[:n]; len(rest) > 0; {
		if c.skip > 0 {
			k := c.skip
			if k > len(rest) {
				k = len(rest)
			}
			c.skip -= k
			rest = rest[k:]
			continue
		}
		k := 8 - len(c.head)
		if k > len(rest) {
			k = len(rest)
		}
		c.head = append(c.head, rest[:k]...)
		rest = rest[k:]
		if len(c.head) == 8 {
			size := int(int32(uint32(c.head[0])<<24 | uint32(c.head[1])<<16 | uint32(c.head[2])<<8 | uint32(c.head[3])))
			key := int16(uint16(c.head[4])<<8 | uint16(c.head[5]))
			version := int16(uint16(c.head[6])<<8 | uint16(c.head[7]))
			c.sent(key, version)
			c.skip = size - 4
			c.head = c.head[:0]
		}
	}
	return n, err
}
