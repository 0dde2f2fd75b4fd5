package mux

import "net"

// PartialCap returns the capacity of the buffer a virtual connection keeps
// for a command not complete yet.
func PartialCap(c net.Conn) int { return cap(c.(*vconn).partial) }
