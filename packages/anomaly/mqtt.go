package anomaly

import (
	"bufio"
	"context"
	"crypto/tls"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"net"
	"net/url"
	"strings"
	"sync"
	"time"

	"aigrid"
)

// Listener subscribes to an MQTT broker (MQTT 3.1.1) and scores the SenML
// packs published under a topic prefix as readings of one tenant's series:
// the pack on TOPIC_PREFIX/plant-1/pump-7 goes to the series "plant-1.pump-7"
// (the rest of the topic, levels joined by dots). It asks for QoS 1 and
// acknowledges a message once it is scored and saved, or refused, so that a
// bad pack is not redelivered forever and a good one is not lost; a
// redelivered pack is refused as not after the series' last point, so it is
// never scored twice. With Results set, each scored pack's answer (the JSON
// of POST /series/{id}) is published to Results/SERIES at QoS 0.
type Listener struct {
	Package *Package
	// Broker is mqtt://[user:password@]host[:1883] or mqtts://...[:8883].
	Broker   string
	ClientID string
	Tenant   int64
	// Prefix is the topic under which the tenant's sensors publish, without
	// a trailing slash; the listener subscribes to Prefix/#.
	Prefix  string
	Results string
	// Admit, if set, is asked before each pack is scored, as the grid's meter
	// is before a POST: an error refuses the pack (it is logged, acknowledged
	// and dropped), except a rate limit (aigrid.ERateLimited) that passes
	// within a minute, which the listener waits out before asking again,
	// holding the messages behind it, as a client of the HTTP API would.
	// Otherwise done is called with the points scored, 0 when the pack was
	// refused.
	Admit     func(ctx context.Context, series string) (done func(points int), err error)
	KeepAlive time.Duration // 60 s if zero
	// Backoff is the wait before the first reconnection (1 s if zero); it
	// doubles after each failure up to MaxBackoff (1 min if zero), and each
	// wait is drawn between half and all of it, so that listeners cut off
	// together do not all come back at once.
	Backoff, MaxBackoff time.Duration
	// Logger (slog.Default() if nil) should name the tenant: the listener's
	// lines name only the broker, client id, topic and series.
	Logger *slog.Logger

	wmu  sync.Mutex // one writer at a time on the connection
	conn net.Conn
	ids  uint16

	// Refused packs, logged at most once a minute for each reason, so that
	// redelivered packs refused as old do not hide a tenant whose readings
	// are being dropped.
	badTopic, notAdmitted, refused throttle
}

// MQTT control packet types (MQTT 3.1.1, section 2.2.1).
const (
	mqttConnect    = 1
	mqttConnack    = 2
	mqttPublish    = 3
	mqttPuback     = 4
	mqttSubscribe  = 8
	mqttSuback     = 9
	mqttPingreq    = 12
	mqttPingresp   = 13
	mqttDisconnect = 14
)

// maxPacket bounds a packet from the broker; a pack of maxPoints fits.
const maxPacket = maxBody

// Run connects, subscribes and scores until ctx ends, reconnecting after a
// failure with a capped exponential backoff. The first failure of an outage
// is a warning, the next ones debug lines with a warning every tenth, and
// the reconnection says how long the outage lasted. Run returns once every
// goroutine it started has ended.
func (l *Listener) Run(ctx context.Context) error {
	if l.Logger == nil {
		l.Logger = slog.Default()
	}
	if l.Package == nil || l.Prefix == "" || strings.ContainsAny(l.Prefix, "#+") || strings.HasSuffix(l.Prefix, "/") {
		return errors.New("anomaly: an MQTT listener needs the package and a topic prefix without wildcards or a trailing slash")
	}
	first, most := l.Backoff, l.MaxBackoff
	if first <= 0 {
		first = time.Second
	}
	if most <= 0 {
		most = time.Minute
	}
	most = max(most, first)
	log := l.Logger.With("broker", redact(l.Broker), "client_id", l.ClientID)
	var failures int
	var down time.Time
	for {
		start := time.Now()
		err := l.session(ctx, func() {
			if failures > 0 {
				log.Info("anomaly: MQTT connected again", "topics", l.Prefix+"/#", "attempts", failures, "down_for", time.Since(down).Round(time.Second).String())
			} else {
				log.Info("anomaly: MQTT connected", "topics", l.Prefix+"/#")
			}
		})
		if ctx.Err() != nil {
			return nil
		}
		// A session that lasted is not part of an outage.
		if time.Since(start) > most {
			failures = 0
		}
		if failures == 0 {
			down = time.Now()
		}
		failures++
		wait := retryDelay(failures, first, most, rand.Int64N)
		switch {
		case failures == 1:
			log.Warn("anomaly: MQTT session ended; reconnecting", "error", err.Error(), "in", wait.Round(time.Millisecond).String())
		case failures%10 == 0:
			log.Warn("anomaly: MQTT broker still unreachable; retrying", "error", err.Error(), "attempts", failures, "down_for", time.Since(down).Round(time.Second).String())
		default:
			log.Debug("anomaly: MQTT reconnection failed", "error", err.Error(), "attempts", failures, "in", wait.Round(time.Millisecond).String())
		}
		t := time.NewTimer(wait)
		select {
		case <-ctx.Done():
			t.Stop()
			return nil
		case <-t.C:
		}
	}
}

// retryDelay is the wait before reconnection attempt n (from 1): first
// doubled n-1 times, capped at most, then drawn uniformly between half of it
// and all of it by randN (rand.Int64N).
func retryDelay(n int, first, most time.Duration, randN func(int64) int64) time.Duration {
	d := first
	for i := 1; i < n && d < most; i++ {
		d *= 2
	}
	d = min(d, most)
	return d/2 + time.Duration(randN(int64(d/2)+1))
}

// throttle logs a recurring problem at most once a minute, with how many
// times it happened since the last line.
type throttle struct {
	mu     sync.Mutex
	last   time.Time
	missed int
}

func (t *throttle) warn(log *slog.Logger, msg string, args ...any) {
	t.mu.Lock()
	now := time.Now()
	if now.Sub(t.last) < time.Minute {
		t.missed++
		t.mu.Unlock()
		return
	}
	missed := t.missed
	t.last, t.missed = now, 0
	t.mu.Unlock()
	if missed > 0 {
		args = append(args, "not_logged_since", missed)
	}
	log.Warn(msg, args...)
}

// redact drops the password from a broker URL for the log.
func redact(broker string) string {
	u, err := url.Parse(broker)
	if err != nil {
		return "(unparsable broker URL)"
	}
	return u.Redacted()
}

func (l *Listener) dial(ctx context.Context) (net.Conn, *url.URL, error) {
	u, err := url.Parse(l.Broker)
	if err != nil {
		return nil, nil, fmt.Errorf("broker URL: %w", err)
	}
	var d net.Dialer
	switch u.Scheme {
	case "mqtt", "tcp":
		host := u.Host
		if u.Port() == "" {
			host = net.JoinHostPort(u.Hostname(), "1883")
		}
		c, err := d.DialContext(ctx, "tcp", host)
		return c, u, err
	case "mqtts", "ssl", "tls":
		host := u.Host
		if u.Port() == "" {
			host = net.JoinHostPort(u.Hostname(), "8883")
		}
		td := tls.Dialer{NetDialer: &d, Config: &tls.Config{ServerName: u.Hostname()}}
		c, err := td.DialContext(ctx, "tcp", host)
		return c, u, err
	}
	return nil, nil, fmt.Errorf("broker URL: scheme %q is not mqtt or mqtts", u.Scheme)
}

// session runs one connection until it fails or ctx ends; up is called once
// the broker has granted the subscription. The goroutines it starts have
// ended when it returns.
func (l *Listener) session(ctx context.Context, up func()) error {
	conn, u, err := l.dial(ctx)
	if err != nil {
		return err
	}
	defer conn.Close()
	l.wmu.Lock()
	l.conn = conn
	l.wmu.Unlock()
	var wg sync.WaitGroup
	defer wg.Wait()
	wg.Add(1)
	stop := context.AfterFunc(ctx, func() {
		defer wg.Done()
		l.write(mqttDisconnect<<4, nil)
		conn.Close()
	})
	defer func() {
		if stop() {
			wg.Done()
		}
	}()
	keep := l.KeepAlive
	if keep <= 0 {
		keep = time.Minute
	}
	r := bufio.NewReader(conn)
	// A broker that says nothing for 1.5 keep-alive periods is gone.
	deadline := func() { conn.SetReadDeadline(time.Now().Add(keep * 3 / 2)) }
	deadline()
	if err := l.write(mqttConnect<<4, connectPacket(l.ClientID, u.User, keep)); err != nil {
		return err
	}
	typ, _, body, err := readPacket(r)
	switch {
	case err != nil:
		return fmt.Errorf("waiting for CONNACK: %w", err)
	case typ != mqttConnack || len(body) != 2:
		return fmt.Errorf("expected CONNACK, got packet type %d", typ)
	case body[1] != 0:
		return fmt.Errorf("the broker refused the connection (return code %d)", body[1])
	}
	sub := appendString(binary.BigEndian.AppendUint16(nil, l.nextID()), l.Prefix+"/#")
	if err := l.write(mqttSubscribe<<4|0b0010, append(sub, 1)); err != nil {
		return err
	}
	done := make(chan struct{})
	defer close(done)
	wg.Go(func() {
		pinger := time.NewTicker(keep / 2)
		defer pinger.Stop()
		for {
			select {
			case <-done:
				return
			case <-pinger.C:
				if l.write(mqttPingreq<<4, nil) != nil {
					return
				}
			}
		}
	})
	for {
		deadline()
		typ, flags, body, err := readPacket(r)
		if err != nil {
			return err
		}
		switch typ {
		case mqttSuback:
			if len(body) < 3 || body[2] == 0x80 {
				return fmt.Errorf("the broker refused the subscription to %s/#", l.Prefix)
			}
			up()
		case mqttPublish:
			if err := l.publish(ctx, flags, body); err != nil {
				return err
			}
		case mqttPingresp, mqttPuback:
		default:
			return fmt.Errorf("unexpected packet type %d", typ)
		}
	}
}

// publish handles a PUBLISH from the broker.
func (l *Listener) publish(ctx context.Context, flags byte, body []byte) error {
	topic, rest, ok := readString(body)
	qos := flags >> 1 & 3
	if !ok || qos > 1 || (qos == 1 && len(rest) < 2) {
		return errors.New("malformed PUBLISH")
	}
	var ack []byte
	if qos == 1 {
		ack, rest = rest[:2], rest[2:]
	}
	l.handle(ctx, topic, rest)
	if ack != nil {
		return l.write(mqttPuback<<4, ack)
	}
	return nil
}

// handle scores one message; a refused pack is logged, not retried.
func (l *Listener) handle(ctx context.Context, topic string, payload []byte) {
	id, ok := strings.CutPrefix(topic, l.Prefix+"/")
	id = strings.ReplaceAll(id, "/", ".")
	if !ok || !validID(id) {
		l.badTopic.warn(l.Logger, "anomaly: MQTT topic names no valid series", "topic", topic)
		return
	}
	done, err := l.admit(ctx, id)
	if err != nil {
		if ctx.Err() == nil {
			l.notAdmitted.warn(l.Logger, "anomaly: MQTT pack not admitted; its readings are dropped", "topic", topic, "error", aigrid.ErrorMessage(err))
		}
		return
	}
	now := l.Package.now()
	pack, err := ParseSenML(payload, now)
	var res *Scores
	if err == nil {
		res, err = l.Package.Score(ctx, l.Tenant, id, pack, nil, now)
	}
	if err != nil {
		done(0)
		l.refused.warn(l.Logger, "anomaly: MQTT pack refused", "topic", topic, "error", aigrid.ErrorMessage(err))
		return
	}
	done(len(pack.Points))
	if res.Flagged > 0 {
		l.Logger.Info("anomaly: flagged", "series", id, "points", res.Flagged)
	}
	if l.Results == "" {
		return
	}
	b, err := json.Marshal(res)
	if err != nil {
		l.Logger.Error("anomaly: encode MQTT result", "error", err)
		return
	}
	// QoS 0: a lost result is a lost notification, never a lost reading.
	if err := l.write(mqttPublish<<4, append(appendString(nil, l.Results+"/"+id), b...)); err != nil {
		l.Logger.Warn("anomaly: MQTT result not published", "error", err)
	}
}

// maxRateWait is the longest rate limit waited out: a request rate's. A
// used-up daily or monthly quota, which renews later, refuses the pack.
const maxRateWait = time.Minute

// admit asks Admit, waiting out short rate limits, until the pack is
// admitted or refused, or ctx ends.
func (l *Listener) admit(ctx context.Context, series string) (func(int), error) {
	if l.Admit == nil {
		return func(int) {}, nil
	}
	for {
		done, err := l.Admit(ctx, series)
		var e *aigrid.Error
		// A limit with no time to wait is one the pack can never meet.
		if err == nil || !errors.As(err, &e) || e.Code != aigrid.ERateLimited || e.RetryAfter <= 0 || e.RetryAfter > maxRateWait {
			return done, err
		}
		t := time.NewTimer(e.RetryAfter)
		select {
		case <-ctx.Done():
			t.Stop()
			return nil, ctx.Err()
		case <-t.C:
		}
	}
}

func (l *Listener) nextID() uint16 {
	l.ids++
	if l.ids == 0 {
		l.ids = 1
	}
	return l.ids
}

// write sends one packet.
func (l *Listener) write(header byte, body []byte) error {
	l.wmu.Lock()
	defer l.wmu.Unlock()
	if l.conn == nil {
		return errors.New("not connected")
	}
	pkt := appendLength([]byte{header}, len(body))
	l.conn.SetWriteDeadline(time.Now().Add(30 * time.Second))
	_, err := l.conn.Write(append(pkt, body...))
	return err
}

// connectPacket is the body of CONNECT: protocol "MQTT" level 4, a clean
// session, the keep-alive, the client id, and the user and password if any.
func connectPacket(clientID string, user *url.Userinfo, keep time.Duration) []byte {
	b := appendString(nil, "MQTT")
	flags := byte(0x02)
	pass, hasPass := "", false
	if user != nil {
		flags |= 0x80
		if pass, hasPass = user.Password(); hasPass {
			flags |= 0x40
		}
	}
	b = append(b, 4, flags)
	b = binary.BigEndian.AppendUint16(b, uint16(min(keep/time.Second, 65535)))
	b = appendString(b, clientID)
	if user != nil {
		b = appendString(b, user.Username())
		if hasPass {
			b = appendString(b, pass)
		}
	}
	return b
}

func appendString(b []byte, s string) []byte {
	b = binary.BigEndian.AppendUint16(b, uint16(len(s)))
	return append(b, s...)
}

func readString(b []byte) (string, []byte, bool) {
	if len(b) < 2 {
		return "", nil, false
	}
	n := int(binary.BigEndian.Uint16(b))
	if len(b) < 2+n {
		return "", nil, false
	}
	return string(b[2 : 2+n]), b[2+n:], true
}

// appendLength appends MQTT's variable-length remaining length.
func appendLength(b []byte, n int) []byte {
	for {
		c := byte(n % 128)
		n /= 128
		if n > 0 {
			c |= 0x80
		}
		b = append(b, c)
		if n == 0 {
			return b
		}
	}
}

// readPacket reads one control packet: its type, flags and body.
func readPacket(r *bufio.Reader) (typ, flags byte, body []byte, err error) {
	h, err := r.ReadByte()
	if err != nil {
		return 0, 0, nil, err
	}
	n, mult := 0, 1
	for i := 0; ; i++ {
		c, err := r.ReadByte()
		if err != nil {
			return 0, 0, nil, err
		}
		n += int(c&0x7f) * mult
		if c&0x80 == 0 {
			break
		}
		if i == 3 {
			return 0, 0, nil, errors.New("malformed remaining length")
		}
		mult *= 128
	}
	if n > maxPacket {
		return 0, 0, nil, fmt.Errorf("a packet of %d bytes is larger than %d", n, maxPacket)
	}
	body = make([]byte, n)
	if _, err := io.ReadFull(r, body); err != nil {
		return 0, 0, nil, err
	}
	return h >> 4, h & 0x0f, body, nil
}
