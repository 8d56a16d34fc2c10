package embedetcd

import (
	"errors"
	"strings"
	"testing"
)

func TestDefaultAddrs(t *testing.T) {
	tests := []struct {
		name, base           string
		wantClient, wantPeer string
		wantErr              string // substring; "" = no error
	}{
		{name: "ipv4", base: "10.0.0.5:8080", wantClient: "10.0.0.5:18080", wantPeer: "10.0.0.5:28080"},
		{name: "all interfaces", base: ":9000", wantClient: ":19000", wantPeer: ":29000"},
		{name: "ipv6", base: "[::1]:7000", wantClient: "[::1]:17000", wantPeer: "[::1]:27000"},
		{name: "highest port", base: "127.0.0.1:45535", wantClient: "127.0.0.1:55535", wantPeer: "127.0.0.1:65535"},
		{name: "overflow", base: "127.0.0.1:45536", wantErr: "exceeds 65535"},
		{name: "port zero", base: "127.0.0.1:0", wantErr: "port must be 1-65535"},
		{name: "no port", base: "127.0.0.1", wantErr: "missing port"},
		{name: "bad port", base: "127.0.0.1:http", wantErr: "port must be 1-65535"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			client, peer, err := DefaultAddrs(tt.base)
			if tt.wantErr != "" {
				if !errors.Is(err, ErrInvalidConfig) || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("DefaultAddrs(%q) error = %v, want ErrInvalidConfig containing %q", tt.base, err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatalf("DefaultAddrs(%q): %v", tt.base, err)
			}
			if client != tt.wantClient || peer != tt.wantPeer {
				t.Fatalf("DefaultAddrs(%q) = %q, %q; want %q, %q", tt.base, client, peer, tt.wantClient, tt.wantPeer)
			}
		})
	}
}

func TestConfigValidate(t *testing.T) {
	ok := func() Config {
		return Config{Name: "n1", Dir: "/tmp/x", ClientAddr: "127.0.0.1:0", PeerAddr: "127.0.0.1:2380"}
	}
	tests := []struct {
		name    string
		mutate  func(*Config)
		wantErr string // substring naming the field; "" = valid
	}{
		{name: "valid", mutate: func(*Config) {}},
		{name: "defaults", mutate: func(c *Config) { c.ClientAddr, c.PeerAddr = "", "" }},
		{name: "advertise host for all interfaces", mutate: func(c *Config) {
			c.ClientAddr, c.PeerAddr, c.AdvertiseHost = ":0", "0.0.0.0:2380", "node1.example"
		}},
		{name: "no name", mutate: func(c *Config) { c.Name = "" }, wantErr: "Name is required"},
		{name: "name with comma", mutate: func(c *Config) { c.Name = "a,b" }, wantErr: `Name "a,b"`},
		{name: "name with equals", mutate: func(c *Config) { c.Name = "a=b" }, wantErr: `Name "a=b"`},
		{name: "no dir", mutate: func(c *Config) { c.Dir = "" }, wantErr: "Dir is required"},
		{name: "client addr no port", mutate: func(c *Config) { c.ClientAddr = "127.0.0.1" }, wantErr: `ClientAddr "127.0.0.1"`},
		{name: "client addr host name", mutate: func(c *Config) { c.ClientAddr = "node1:2379" }, wantErr: "ClientAddr \"node1:2379\": host must be an IP"},
		{name: "client port too big", mutate: func(c *Config) { c.ClientAddr = "127.0.0.1:70000" }, wantErr: "ClientAddr \"127.0.0.1:70000\": port"},
		{name: "peer port zero", mutate: func(c *Config) { c.PeerAddr = "127.0.0.1:0" }, wantErr: "PeerAddr \"127.0.0.1:0\": port must be concrete"},
		{name: "all interfaces without advertise", mutate: func(c *Config) { c.PeerAddr = "0.0.0.0:2380" }, wantErr: "set AdvertiseHost"},
		{name: "advertise unspecified", mutate: func(c *Config) { c.AdvertiseHost = "0.0.0.0" }, wantErr: "AdvertiseHost \"0.0.0.0\""},
		{name: "election too short", mutate: func(c *Config) { c.TickMs, c.ElectionMs = 100, 400 }, wantErr: "ElectionMs (400) must be at least 5 × TickMs (100)"},
		{name: "election default vs tick", mutate: func(c *Config) { c.TickMs = 300 }, wantErr: "ElectionMs (1000)"},
		{name: "election too long", mutate: func(c *Config) { c.ElectionMs = 60000 }, wantErr: "ElectionMs (60000) must be at most 50000"},
		{name: "compaction too short", mutate: func(c *Config) { c.AutoCompaction = 10 }, wantErr: "AutoCompaction"},
		{name: "compaction off", mutate: func(c *Config) { c.AutoCompaction = -1 }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := ok()
			tt.mutate(&c)
			s, err := c.validate()
			if tt.wantErr == "" {
				if err != nil {
					t.Fatalf("validate: %v, want no error", err)
				}
				if s.peerURL == "" || s.TickMs == 0 || s.ElectionMs == 0 {
					t.Fatalf("defaults not applied: %+v", s)
				}
				return
			}
			if !errors.Is(err, ErrInvalidConfig) || !strings.Contains(err.Error(), tt.wantErr) {
				t.Fatalf("validate error = %v, want ErrInvalidConfig containing %q", err, tt.wantErr)
			}
		})
	}
}

func TestAdvertisedURLs(t *testing.T) {
	c := Config{Name: "n", Dir: "d", ClientAddr: "0.0.0.0:0", PeerAddr: "[::]:2380", AdvertiseHost: "node1.example"}
	s, err := c.validate()
	if err != nil {
		t.Fatal(err)
	}
	if got, want := s.peerURL, "http://node1.example:2380"; got != want {
		t.Fatalf("peer URL = %q, want %q", got, want)
	}
	listen, adv := s.clientURLs(4000)
	if listen.String() != "http://0.0.0.0:4000" || adv.String() != "http://node1.example:4000" {
		t.Fatalf("client URLs = %s, %s; want http://0.0.0.0:4000, http://node1.example:4000", listen.String(), adv.String())
	}
}

func TestFastTestConfig(t *testing.T) {
	c := FastTestConfig("n1", t.TempDir())
	s, err := c.validate()
	if err != nil {
		t.Fatalf("FastTestConfig is invalid: %v", err)
	}
	if s.clientPort != 0 || s.peerPort == 0 || s.TickMs != 10 || s.ElectionMs != 100 || !s.UnsafeNoFsync || s.DisableStrictReconfigCheck {
		t.Fatalf("FastTestConfig = %+v, want client port 0, concrete peer port, tick 10, election 100, no fsync, strict check", c)
	}
}
