package clusterkit

import "net"

// dialableHost returns host, or 127.0.0.1 when host is empty or unspecified
// (0.0.0.0, ::): a listener's host as others on this machine can dial it.
func dialableHost(host string) string {
	if isUnspecifiedHost(host) {
		return "127.0.0.1"
	}
	return host
}

// isUnspecifiedHost reports whether a listener on host listens on every
// interface.
func isUnspecifiedHost(host string) bool {
	ip := net.ParseIP(host)
	return host == "" || (ip != nil && ip.IsUnspecified())
}

// advertiseAddr is Options.AdvertiseAddr, or the bound HTTP address with a
// dialable host when it listens on all interfaces.
func advertiseAddr(o *Options, bound string) string {
	if o.AdvertiseAddr != "" {
		return o.AdvertiseAddr
	}
	host, port, err := net.SplitHostPort(bound)
	if err != nil {
		return bound
	}
	return net.JoinHostPort(dialableHost(host), port)
}
