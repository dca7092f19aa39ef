// Package mqtttest is an MQTT 3.1.1 broker for tests, on loopback. It takes
// clients that connect and subscribe to one topic filter, lets the test
// publish to them at QoS 1 and read what they send back (acknowledgements,
// their own publications, DISCONNECT), and can drop a client or go down and
// come back on the same address, to test reconnection.
//
// It speaks only the part of the protocol a subscriber needs, written here
// from the specification, apart from the code under test, so that a mistake
// in one is not mirrored in the other.
package mqtttest

import (
	"bufio"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// Control packet types (MQTT 3.1.1, section 2.2.1).
const (
	Connect    = 1
	Connack    = 2
	Publish    = 3
	Puback     = 4
	Subscribe  = 8
	Suback     = 9
	Pingreq    = 12
	Pingresp   = 13
	Disconnect = 14
)

// wait bounds every wait of a test on the client.
const wait = 10 * time.Second

// Broker accepts clients on a loopback address.
type Broker struct {
	addr     string
	accepted chan accepted

	mu    sync.Mutex
	ln    net.Listener
	conns map[net.Conn]bool
	loops sync.WaitGroup
}

type accepted struct {
	conn *Conn
	err  error
}

// Conn is a client that connected and subscribed.
type Conn struct {
	// What the client's CONNECT and SUBSCRIBE said.
	ClientID, User, Password string
	HasUser, HasPassword     bool
	CleanSession             bool
	KeepAlive                time.Duration
	Filter                   string
	QoS                      byte

	c     net.Conn
	r     *bufio.Reader
	pings atomic.Int64
}

// Packet is a control packet a client sent.
type Packet struct {
	Type, Flags byte
	Body        []byte
	// Topic and Payload of a PUBLISH; ID of a PUBACK or of a QoS 1 PUBLISH.
	Topic   string
	Payload []byte
	ID      uint16
}

// New starts a broker on a free loopback port; it stops when the test ends.
func New(t testing.TB) *Broker {
	t.Helper()
	b := &Broker{accepted: make(chan accepted, 64), conns: map[net.Conn]bool{}}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	b.addr = ln.Addr().String()
	b.serve(ln)
	t.Cleanup(b.Stop)
	return b
}

// Addr is the broker's host:port.
func (b *Broker) Addr() string { return b.addr }

// Stop closes the listening socket and every connection: the broker is down.
func (b *Broker) Stop() {
	b.mu.Lock()
	if b.ln != nil {
		b.ln.Close()
		b.ln = nil
	}
	for c := range b.conns {
		c.Close()
	}
	b.mu.Unlock()
	b.loops.Wait()
	// Whatever was accepted before is closed now; a test that starts the
	// broker again waits for new clients.
	for {
		select {
		case <-b.accepted:
		default:
			return
		}
	}
}

// Start listens again on the broker's address after Stop.
func (b *Broker) Start(t testing.TB) {
	t.Helper()
	ln, err := net.Listen("tcp", b.addr)
	if err != nil {
		t.Fatalf("broker: listen again on %s: %v", b.addr, err)
	}
	b.serve(ln)
}

func (b *Broker) serve(ln net.Listener) {
	b.mu.Lock()
	b.ln = ln
	b.mu.Unlock()
	b.loops.Go(func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			b.mu.Lock()
			if b.ln != ln { // stopped since Accept returned
				b.mu.Unlock()
				c.Close()
				return
			}
			b.conns[c] = true
			b.mu.Unlock()
			b.loops.Go(func() {
				conn, err := handshake(c)
				if err != nil {
					c.Close()
				}
				select {
				case b.accepted <- accepted{conn, err}:
				default: // a test that lets this many clients wait has failed already
					c.Close()
				}
			})
		}
	})
}

// Accept returns the next client that connected and subscribed, failing the
// test if none does in time or if a client broke the protocol.
func (b *Broker) Accept(t testing.TB) *Conn {
	t.Helper()
	select {
	case a := <-b.accepted:
		if a.err != nil {
			t.Fatalf("broker: %v", a.err)
		}
		return a.conn
	case <-time.After(wait):
		t.Fatalf("broker: no client connected and subscribed within %s", wait)
		return nil
	}
}

// handshake reads CONNECT, accepts it, reads SUBSCRIBE and grants it.
func handshake(c net.Conn) (*Conn, error) {
	c.SetDeadline(time.Now().Add(wait))
	defer c.SetDeadline(time.Time{})
	conn := &Conn{c: c, r: bufio.NewReader(c)}
	p, err := conn.read()
	if err != nil {
		return nil, fmt.Errorf("waiting for CONNECT: %w", err)
	}
	if p.Type != Connect {
		return nil, fmt.Errorf("first packet of type %d, want CONNECT", p.Type)
	}
	proto, rest, ok := field(p.Body)
	if !ok || string(proto) != "MQTT" || len(rest) < 4 || rest[0] != 4 {
		return nil, fmt.Errorf("CONNECT is not MQTT 3.1.1: % x", p.Body)
	}
	flags := rest[1]
	if flags&0x01 != 0 || flags&0x04 != 0 {
		return nil, fmt.Errorf("CONNECT flags %08b: reserved bit or a will, which this broker does not take", flags)
	}
	conn.CleanSession = flags&0x02 != 0
	conn.HasUser, conn.HasPassword = flags&0x80 != 0, flags&0x40 != 0
	conn.KeepAlive = time.Duration(binary.BigEndian.Uint16(rest[2:4])) * time.Second
	id, rest, ok := field(rest[4:])
	conn.ClientID = string(id)
	if ok && conn.HasUser {
		var u []byte
		u, rest, ok = field(rest)
		conn.User = string(u)
	}
	if ok && conn.HasPassword {
		var pw []byte
		pw, rest, ok = field(rest)
		conn.Password = string(pw)
	}
	if !ok || len(rest) != 0 {
		return nil, fmt.Errorf("CONNECT payload malformed: % x", p.Body)
	}
	if err := conn.send(Connack, 0, []byte{0, 0}); err != nil {
		return nil, err
	}
	if p, err = conn.read(); err != nil {
		return nil, fmt.Errorf("waiting for SUBSCRIBE: %w", err)
	}
	if p.Type != Subscribe || p.Flags != 2 || len(p.Body) < 2 {
		return nil, fmt.Errorf("packet of type %d flags %d, want SUBSCRIBE", p.Type, p.Flags)
	}
	filter, rest, ok := field(p.Body[2:])
	if !ok || len(rest) != 1 || rest[0] > 2 {
		return nil, fmt.Errorf("SUBSCRIBE asks for more than one filter, or a bad QoS: % x", p.Body)
	}
	conn.Filter, conn.QoS = string(filter), rest[0]
	if err := conn.send(Suback, 0, []byte{p.Body[0], p.Body[1], conn.QoS}); err != nil {
		return nil, err
	}
	return conn, nil
}

// Publish sends a QoS 1 PUBLISH with the packet identifier id.
func (c *Conn) Publish(t testing.TB, id uint16, topic string, payload []byte) {
	t.Helper()
	body := binary.BigEndian.AppendUint16(appendField(nil, topic), id)
	if err := c.send(Publish, 0b0010, append(body, payload...)); err != nil {
		t.Fatalf("broker: publish on %s: %v", topic, err)
	}
}

// Next returns the client's next packet other than PINGREQ, which it answers.
func (c *Conn) Next(t testing.TB) Packet {
	t.Helper()
	c.c.SetReadDeadline(time.Now().Add(wait))
	for {
		p, err := c.read()
		if err != nil {
			t.Fatalf("broker: reading from the client: %v", err)
		}
		if p.Type != Pingreq {
			return p
		}
		c.pings.Add(1)
		if err := c.send(Pingresp, 0, nil); err != nil {
			t.Fatalf("broker: PINGRESP: %v", err)
		}
	}
}

// WantAck reads the client's next packet and fails the test unless it is the
// PUBACK of id.
func (c *Conn) WantAck(t testing.TB, id uint16) {
	t.Helper()
	if p := c.Next(t); p.Type != Puback || p.ID != id {
		t.Fatalf("broker: want PUBACK %d, got packet type %d % x", id, p.Type, p.Body)
	}
}

// WantClosed fails the test unless the client sends nothing but PINGREQs
// until the connection ends, within d.
func (c *Conn) WantClosed(t testing.TB, d time.Duration) {
	t.Helper()
	c.c.SetReadDeadline(time.Now().Add(d))
	for {
		p, err := c.read()
		if errors.Is(err, io.EOF) || errors.Is(err, net.ErrClosed) {
			return
		}
		if err != nil {
			t.Fatalf("broker: the connection did not end: %v", err)
		}
		if p.Type != Pingreq {
			t.Fatalf("broker: want the connection to end, got packet type %d", p.Type)
		}
	}
}

// Pings counts the PINGREQs Next has answered.
func (c *Conn) Pings() int64 { return c.pings.Load() }

// Close drops the client.
func (c *Conn) Close() { c.c.Close() }

func (c *Conn) send(typ, flags byte, body []byte) error {
	pkt := []byte{typ<<4 | flags}
	for n := len(body); ; {
		d := byte(n % 128)
		if n /= 128; n > 0 {
			d |= 0x80
		}
		pkt = append(pkt, d)
		if n == 0 {
			break
		}
	}
	_, err := c.c.Write(append(pkt, body...))
	return err
}

func (c *Conn) read() (Packet, error) {
	h, err := c.r.ReadByte()
	if err != nil {
		return Packet{}, err
	}
	n := 0
	for i, mult := 0, 1; ; i, mult = i+1, mult*128 {
		d, err := c.r.ReadByte()
		if err != nil {
			return Packet{}, err
		}
		n += int(d&0x7f) * mult
		if d&0x80 == 0 {
			break
		}
		if i == 3 {
			return Packet{}, errors.New("remaining length longer than 4 bytes")
		}
	}
	p := Packet{Type: h >> 4, Flags: h & 0x0f, Body: make([]byte, n)}
	if _, err := io.ReadFull(c.r, p.Body); err != nil {
		return Packet{}, err
	}
	switch p.Type {
	case Puback:
		if len(p.Body) != 2 {
			return p, fmt.Errorf("PUBACK of %d bytes", len(p.Body))
		}
		p.ID = binary.BigEndian.Uint16(p.Body)
	case Publish:
		topic, rest, ok := field(p.Body)
		if !ok {
			return p, errors.New("PUBLISH without a topic")
		}
		p.Topic = string(topic)
		if p.Flags>>1&3 > 0 {
			if len(rest) < 2 {
				return p, errors.New("QoS 1 PUBLISH without a packet identifier")
			}
			p.ID, rest = binary.BigEndian.Uint16(rest), rest[2:]
		}
		p.Payload = rest
	}
	return p, nil
}

// field reads a length-prefixed string (or binary data) field.
func field(b []byte) ([]byte, []byte, bool) {
	if len(b) < 2 {
		return nil, nil, false
	}
	n := int(binary.BigEndian.Uint16(b))
	if len(b) < 2+n {
		return nil, nil, false
	}
	return b[2 : 2+n], b[2+n:], true
}

func appendField(b []byte, s string) []byte {
	return append(binary.BigEndian.AppendUint16(b, uint16(len(s))), s...)
}

// Goroutines returns the stacks of the goroutines whose stack mentions fn
// (such as "anomaly.(*Listener)") that are still there after d, to check
// that a client's goroutines end when it says it has stopped. (A goroutine
// that has told a WaitGroup it is done may still be on its way out for a
// moment; one that is stuck stays.)
func Goroutines(fn string, d time.Duration) string {
	buf := make([]byte, 1<<20)
	for deadline := time.Now().Add(d); ; time.Sleep(time.Millisecond) {
		var found []string
		for _, g := range strings.Split(string(buf[:runtime.Stack(buf, true)]), "\n\n") {
			if strings.Contains(g, fn) {
				found = append(found, g)
			}
		}
		if len(found) == 0 || time.Now().After(deadline) {
			return strings.Join(found, "\n\n")
		}
	}
}
