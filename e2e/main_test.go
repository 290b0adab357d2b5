package e2e

import (
	"testing"

	"gitmesh/meshtest"
)

func TestMain(m *testing.M) { meshtest.Main(m) }
