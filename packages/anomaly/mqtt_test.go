package anomaly

import (
	"bufio"
	"bytes"
	"context"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net"
	"strings"
	"sync"
	"testing"
	"time"
)

// broker is a fake MQTT broker for one client at a time: it checks the
// client's CONNECT and SUBSCRIBE and lets the test publish and read.
type broker struct {
	t       *testing.T
	ln      net.Listener
	conns   chan *brokerConn
	filters chan string
}

type brokerConn struct {
	net.Conn
	r *bufio.Reader
}

func newBroker(t *testing.T) *broker {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	b := &broker{t: t, ln: ln, conns: make(chan *brokerConn, 4), filters: make(chan string, 4)}
	t.Cleanup(func() { ln.Close() })
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			bc := &brokerConn{c, bufio.NewReader(c)}
			if err := b.handshake(bc); err != nil {
				t.Errorf("broker: %v", err)
				c.Close()
				continue
			}
			b.conns <- bc
		}
	}()
	return b
}

func (b *broker) handshake(c *brokerConn) error {
	typ, _, body, err := readPacket(c.r)
	if err != nil || typ != mqttConnect {
		return fmt.Errorf("CONNECT: type %d, %v", typ, err)
	}
	proto, rest, _ := readString(body)
	if proto != "MQTT" || len(rest) < 4 || rest[0] != 4 || rest[1] != 0xc2 {
		return fmt.Errorf("CONNECT header % x", body)
	}
	id, rest, _ := readString(rest[4:])
	user, rest, _ := readString(rest)
	pass, _, _ := readString(rest)
	if id != "grid-1" || user != "sensors" || pass != "s3cret" {
		return fmt.Errorf("CONNECT as %q %q %q", id, user, pass)
	}
	c.Write([]byte{mqttConnack << 4, 2, 0, 0})
	typ, flags, body, err := readPacket(c.r)
	if err != nil || typ != mqttSubscribe || flags != 2 {
		return fmt.Errorf("SUBSCRIBE: type %d flags %d, %v", typ, flags, err)
	}
	filter, rest, _ := readString(body[2:])
	if len(rest) != 1 || rest[0] != 1 {
		return fmt.Errorf("SUBSCRIBE options % x", rest)
	}
	b.filters <- filter
	c.Write([]byte{mqttSuback << 4, 3, body[0], body[1], 1})
	return nil
}

// publish sends a QoS 1 PUBLISH.
func (c *brokerConn) publish(id uint16, topic string, payload []byte) {
	body := binary.BigEndian.AppendUint16(appendString(nil, topic), id)
	c.Write(append(appendLength([]byte{mqttPublish<<4 | 2}, len(body)+len(payload)), append(body, payload...)...))
}

// next reads the client's next packet other than PINGREQ, which it answers.
func (c *brokerConn) next(t *testing.T) (byte, []byte) {
	t.Helper()
	for {
		c.SetReadDeadline(time.Now().Add(10 * time.Second))
		typ, _, body, err := readPacket(c.r)
		if err != nil {
			t.Fatalf("broker read: %v", err)
		}
		if typ != mqttPingreq {
			return typ, body
		}
		c.Write([]byte{mqttPingresp << 4, 0})
	}
}

func (c *brokerConn) wantAck(t *testing.T, id uint16) {
	t.Helper()
	typ, body := c.next(t)
	if typ != mqttPuback || !bytes.Equal(body, binary.BigEndian.AppendUint16(nil, id)) {
		t.Fatalf("want PUBACK %d, got type %d % x", id, typ, body)
	}
}

// senmlMinutes is a SenML pack of values one minute apart from t0.
func senmlMinutes(t0 time.Time, values []float64) []byte {
	var b strings.Builder
	fmt.Fprintf(&b, `[{"bn":"pump-7:","bt":%d,"n":"pressure","v":%v}`, t0.Unix(), values[0])
	for i, v := range values[1:] {
		fmt.Fprintf(&b, `,{"n":"pressure","t":%d,"v":%v}`, 60*(i+1), v)
	}
	b.WriteString("]")
	return []byte(b.String())
}

func TestMQTTListener(t *testing.T) {
	docs := newMemDocs()
	p := NewPackage(docs)
	b := newBroker(t)
	var mu sync.Mutex
	scored := map[string]int{}
	l := &Listener{
		Package: p, Broker: "mqtt://sensors:s3cret@" + b.ln.Addr().String(), ClientID: "grid-1",
		Tenant: tenantA.ID, Prefix: "waterworks/sensors", Results: "waterworks/anomaly", KeepAlive: time.Second,
		Logger: slog.New(slog.NewTextHandler(io.Discard, nil)),
		Scored: func(tenant int64, series string, n int) {
			mu.Lock()
			scored[fmt.Sprint(tenant, series)] += n
			mu.Unlock()
		},
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error)
	go func() { done <- l.Run(ctx) }()

	c := <-b.conns
	if f := <-b.filters; f != "waterworks/sensors/#" {
		t.Fatalf("subscribed to %q", f)
	}
	xs := noise(300, 31)
	xs[299] += 10
	pack := senmlMinutes(start, xs)
	c.publish(10, "waterworks/sensors/plant-1/pump-7", pack)
	// The result comes before the acknowledgement: it is published while
	// the pack is handled.
	typ, body := c.next(t)
	topic, payload, _ := readString(body)
	var res Scores
	if typ != mqttPublish || topic != "waterworks/anomaly/plant-1.pump-7" || json.Unmarshal(payload, &res) != nil {
		t.Fatalf("want the result on waterworks/anomaly/plant-1.pump-7, got type %d topic %q", typ, topic)
	}
	if len(res.Points) != 300 || !res.Points[299].Flag || res.Flagged != 1 {
		t.Errorf("result: %d points, flagged %d", len(res.Points), res.Flagged)
	}
	c.wantAck(t, 10)
	// A bad pack and a redelivered one are acknowledged and change nothing.
	c.publish(11, "waterworks/sensors/plant-1/pump-7", []byte(`[{"n":"pressure","v":"high"}]`))
	c.wantAck(t, 11)
	c.publish(10, "waterworks/sensors/plant-1/pump-7", pack)
	c.wantAck(t, 10)
	c.publish(12, "waterworks/sensors/bad id", pack)
	c.wantAck(t, 12)
	// Keep-alive: the client pings within a second; next answers it.
	c.publish(13, "waterworks/sensors/plant-1/pump-7", senmlMinutes(start.Add(300*time.Minute), []float64{10}))
	time.Sleep(1100 * time.Millisecond)
	if typ, _ := c.next(t); typ != mqttPublish {
		t.Fatalf("want a result, got type %d", typ)
	}
	c.wantAck(t, 13)

	// The broker drops the connection; the listener comes back.
	c.Close()
	c = <-b.conns
	<-b.filters
	c.publish(1, "waterworks/sensors/plant-1/pump-7", senmlMinutes(start.Add(301*time.Minute), []float64{10.5}))
	c.next(t)
	c.wantAck(t, 1)

	cancel()
	if err := <-done; err != nil {
		t.Errorf("Run: %v", err)
	}
	if typ, _ := c.next(t); typ != mqttDisconnect {
		t.Errorf("on shutdown: packet type %d, want DISCONNECT", typ)
	}
	d, err := docs.GetDoc(context.Background(), Name, tenantA.ID, docPrefix+"plant-1.pump-7")
	if err != nil {
		t.Fatal(err)
	}
	var s series
	if err := json.Unmarshal(d.Body, &s); err != nil || s.Detector.Points() != 302 {
		t.Errorf("series after MQTT: %v points, %v", s.Detector.Points(), err)
	}
	mu.Lock()
	defer mu.Unlock()
	if n := scored[fmt.Sprint(tenantA.ID, "plant-1.pump-7")]; n != 302 {
		t.Errorf("Scored told of %d points, want 302", n)
	}
}

func TestListenerConfig(t *testing.T) {
	for _, prefix := range []string{"", "a/#", "a/+/b", "a/"} {
		l := &Listener{Package: NewPackage(newMemDocs()), Broker: "mqtt://127.0.0.1:1", Prefix: prefix}
		if err := l.Run(context.Background()); err == nil {
			t.Errorf("prefix %q accepted", prefix)
		}
	}
}

// FuzzReadPacket: any bytes from a broker are a packet or an error.
func FuzzReadPacket(f *testing.F) {
	f.Add([]byte{mqttConnack << 4, 2, 0, 0})
	f.Add([]byte{mqttPublish<<4 | 2, 0x80, 0x80, 0x80, 0x80, 1})
	f.Add(append(appendLength([]byte{mqttPublish << 4}, 300), make([]byte, 300)...))
	f.Fuzz(func(t *testing.T, b []byte) {
		r := bufio.NewReader(bytes.NewReader(b))
		for {
			typ, _, body, err := readPacket(r)
			if err != nil {
				return
			}
			if typ > 15 || len(body) > maxPacket {
				t.Fatalf("type %d, %d bytes", typ, len(body))
			}
			readString(body)
		}
	})
}
