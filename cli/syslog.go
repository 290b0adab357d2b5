package cli

import (
	"fmt"
	"net"
	"os"
	"time"
)

// devLog is where journald and syslogd take local messages.
const devLog = "/dev/log"

// sysLog writes each log line as one datagram to the system log's socket,
// as log/syslog does locally, but with every write bounded: a system log
// that stops reading must not stall serve.
type sysLog struct{ c net.Conn }

// dialSysLog connects to the datagram socket at path (/dev/log).
func dialSysLog(path string) (*sysLog, error) {
	c, err := net.DialTimeout("unixgram", path, time.Second)
	if err != nil {
		return nil, err
	}
	return &sysLog{c}, nil
}

// Write sends p as one message at priority warning, facility daemon
// (<28>), tagged gitmesh[PID]. A message that cannot be written within a
// second is dropped.
func (s *sysLog) Write(p []byte) (int, error) {
	s.c.SetWriteDeadline(time.Now().Add(time.Second))
	msg := fmt.Sprintf("<28>%s gitmesh[%d]: %s", time.Now().Format(time.Stamp), os.Getpid(), p)
	if _, err := s.c.Write([]byte(msg)); err != nil {
		return 0, err
	}
	return len(p), nil
}

func (s *sysLog) Close() error { return s.c.Close() }
