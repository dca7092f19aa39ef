package config

import (
	"fmt"
	"hash/fnv"
	"net"
	"net/url"
	"os"
	"strconv"
	"strings"
	"unicode/utf8"
)

// Packages holds the turnkey packages' settings.
type Packages struct {
	Anomaly AnomalySettings `yaml:"anomaly"`
}

// AnomalySettings are the anomaly package's settings.
type AnomalySettings struct {
	// MQTT lists the subscriptions through which sensors feed tenants' series.
	MQTT []MQTT `yaml:"mqtt"`
}

// MQTT is one subscription of the anomaly package to an MQTT broker: the
// SenML packs published under Prefix are scored as the tenant's readings.
type MQTT struct {
	// Broker is mqtt://[user[:password]@]host[:1883] or mqtts://...[:8883].
	Broker string `yaml:"broker"`
	// PasswordEnv names an environment variable holding the password of
	// the broker URL's user, so that it need not be written in the file.
	PasswordEnv string `yaml:"password_env"`
	Tenant      string `yaml:"tenant"`
	Prefix      string `yaml:"prefix"`
	Results     string `yaml:"results"`
	// ClientID defaults to aigrid-TENANT-HASH, HASH a digest of the prefix,
	// so that two subscriptions never share one by default.
	ClientID string `yaml:"client_id"`
}

// BrokerURL returns the broker URL to connect to, with the password from
// PasswordEnv when it names one.
func (m *MQTT) BrokerURL() string {
	if m.PasswordEnv == "" {
		return m.Broker
	}
	u, err := url.Parse(m.Broker)
	if err != nil || u.User == nil { // the check refuses both
		return m.Broker
	}
	u.User = url.UserPassword(u.User.Username(), os.Getenv(m.PasswordEnv))
	return u.String()
}

// defaultClientID is aigrid-TENANT- and 8 hex digits of the prefix's FNV-1a.
func defaultClientID(tenant, prefix string) string {
	h := fnv.New32a()
	h.Write([]byte(prefix))
	return fmt.Sprintf("aigrid-%s-%08x", tenant, h.Sum32())
}

// checkPackages checks the packages' settings against the file's tenants
// and fills in default client ids.
func (f *File) checkPackages(add func(line int, path, format string, args ...any), at func(path ...any) int, tenants map[string]bool) {
	type session struct{ addr, clientID string }
	seen := map[session]string{}
	for i := range f.Packages.Anomaly.MQTT {
		m := &f.Packages.Anomaly.MQTT[i]
		path := fmt.Sprintf("packages.anomaly.mqtt[%d]", i)
		line := func(key string) int { return at("packages", "anomaly", "mqtt", i, key) }
		addr, err := checkBroker(m.Broker, m.PasswordEnv)
		if err != nil {
			add(line("broker"), path+".broker", "%v", err)
		}
		switch {
		case m.Tenant == "":
			add(at("packages", "anomaly", "mqtt", i), path+".tenant", "the tenant whose series the readings feed is required")
		case !tenants[m.Tenant]:
			add(line("tenant"), path+".tenant", "no tenant %q in this file", m.Tenant)
		}
		if m.Prefix == "" {
			add(at("packages", "anomaly", "mqtt", i), path+".prefix", "the topic prefix is required (the listener subscribes to PREFIX/#)")
		} else if err := checkTopic(m.Prefix); err != nil {
			add(line("prefix"), path+".prefix", "%q %v", m.Prefix, err)
		}
		if m.Results != "" {
			if err := checkTopic(m.Results); err != nil {
				add(line("results"), path+".results", "%q %v", m.Results, err)
			} else if m.Prefix != "" && (m.Results == m.Prefix || strings.HasPrefix(m.Results, m.Prefix+"/")) {
				add(line("results"), path+".results", "%q is under the prefix %q: the listener would read its own results as readings", m.Results, m.Prefix)
			}
		}
		if m.ClientID == "" {
			m.ClientID = defaultClientID(m.Tenant, m.Prefix)
		} else if err := checkClientID(m.ClientID); err != nil {
			add(line("client_id"), path+".client_id", "%q %v", m.ClientID, err)
		}
		if addr == "" {
			continue
		}
		k := session{addr, m.ClientID}
		if other, ok := seen[k]; ok {
			add(line("client_id"), path+".client_id", "client id %q is also used by %s on the same broker, which would disconnect one for the other (give each a client_id of its own)", m.ClientID, other)
		}
		seen[k] = path
	}
}

// checkBroker checks a broker URL and returns its host:port.
func checkBroker(broker, passwordEnv string) (string, error) {
	if broker == "" {
		return "", fmt.Errorf("the broker URL is required, such as mqtts://user@broker.example:8883")
	}
	u, err := url.Parse(broker)
	if err != nil {
		return "", fmt.Errorf("%q is not a URL such as mqtts://user@broker.example:8883", broker)
	}
	port := ""
	switch u.Scheme {
	case "mqtt":
		port = "1883"
	case "mqtts":
		port = "8883"
	default:
		return "", fmt.Errorf("%q: the scheme must be mqtt or mqtts (TLS), not %q", u.Redacted(), u.Scheme)
	}
	switch {
	case u.Hostname() == "":
		return "", fmt.Errorf("%q names no host", u.Redacted())
	case u.Path != "" && u.Path != "/" || u.RawQuery != "" || u.Fragment != "" || u.Opaque != "":
		return "", fmt.Errorf("%q: a broker URL has no path or query (topics are set by prefix and results)", u.Redacted())
	}
	if p := u.Port(); p != "" {
		if n, err := strconv.Atoi(p); err != nil || n < 1 || n > 65535 {
			return "", fmt.Errorf("%q: port %q is not a number from 1 to 65535", u.Redacted(), p)
		}
		port = p
	}
	if passwordEnv != "" {
		if u.User == nil || u.User.Username() == "" {
			return "", fmt.Errorf("password_env %s needs a user name in the broker URL, such as mqtts://grid@%s", passwordEnv, u.Host)
		}
		if _, ok := u.User.Password(); ok {
			return "", fmt.Errorf("%q has a password and password_env names another: give one", u.Redacted())
		}
	}
	return net.JoinHostPort(strings.ToLower(u.Hostname()), port), nil
}

// checkTopic checks a topic name the listener subscribes under or publishes
// to (MQTT 3.1.1, section 4.7).
func checkTopic(topic string) error {
	switch {
	case !utf8.ValidString(topic) || strings.ContainsRune(topic, 0):
		return fmt.Errorf("is not a topic: it must be UTF-8 text without NUL")
	case len(topic) > 1024:
		return fmt.Errorf("is longer than 1024 bytes")
	case strings.ContainsAny(topic, "#+"):
		return fmt.Errorf("holds a wildcard (# or +): give the topic below which sensors publish; the listener adds /#")
	case strings.HasSuffix(topic, "/"):
		return fmt.Errorf("ends with /: write it without")
	case strings.HasPrefix(topic, "$"):
		return fmt.Errorf("starts with $, which brokers keep for their own topics")
	}
	return nil
}

// checkClientID keeps client ids to what brokers commonly accept.
func checkClientID(id string) error {
	if len(id) > 128 {
		return fmt.Errorf("is longer than 128 characters")
	}
	for _, r := range id {
		if r <= ' ' || r > '~' {
			return fmt.Errorf("may hold only printable ASCII characters other than space")
		}
	}
	return nil
}

// packageWarnings lists what the packages' settings lack from the environment.
func (f *File) packageWarnings() []string {
	var out []string
	for i, m := range f.Packages.Anomaly.MQTT {
		if m.PasswordEnv != "" && os.Getenv(m.PasswordEnv) == "" {
			out = append(out, fmt.Sprintf("packages.anomaly.mqtt[%d]: the environment variable %s (password_env) is not set; the broker gets an empty password", i, m.PasswordEnv))
		}
	}
	return out
}
