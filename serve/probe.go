package serve

import (
	"errors"
	"os"

	"gitmesh/config"
)

// clusterProbe answers a cluster-key login that asks for nothing, as
// `gitmesh check` sends to see that a device is reachable: sshd let the
// key in, gitmesh runs, and this device's repo root can be read (an
// unmounted disk is not a reachable device). It writes nothing on stdout
// and logs nothing: checks run every minute.
func clusterProbe(s config.Settings, c Conn) error {
	if s.RepoRoot == "" {
		return errors.New("no repo root configured on this device")
	}
	if _, err := os.ReadDir(s.RepoRoot); err != nil {
		c.Log.Error().Err(err).Msg("probe: repo root")
		return errors.New("this device's repo root cannot be read; the administrator can find why in gitmesh's log")
	}
	c.Tell("device %s is reachable", s.Device)
	return nil
}
