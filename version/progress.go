package version

import "fmt"

// tellCatchUp tells the user, as a fetch from peer starts, why the read
// or push waits: this device is behind and catches up first.
func (n *Node) tellCatchUp(st State, peer Copy) {
	from := "new copy"
	if self, ok := st.Self(); ok {
		from = fmt.Sprintf("version %d", self.Version)
	}
	n.Tell("catching up from %s (%s -> %d)", peer.Device, from, peer.Version)
}
