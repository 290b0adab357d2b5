package public

import (
	"errors"
	"fmt"
	"testing"
)

func TestMessageAndWhyFindTheOutermostUserText(t *testing.T) {
	detail := errors.New("open /srv/git/x: permission denied")
	err := fmt.Errorf("catch up: %w", Wrap(fmt.Errorf("fetch: %w", Because(detail, "it cannot be reached")), "no copy is reachable"))
	if m, ok := Message(err); !ok || m != "no copy is reachable" {
		t.Errorf("Message = %q, %v", m, ok)
	}
	if w, ok := Why(err); !ok || w != "it cannot be reached" {
		t.Errorf("Why = %q, %v", w, ok)
	}
	if !errors.Is(err, detail) || err.Error() != "catch up: fetch: open /srv/git/x: permission denied" {
		t.Errorf("the detail is lost: %v", err)
	}
	if _, ok := Message(detail); ok {
		t.Error("a plain error has a user message")
	}
	if Wrap(nil, "x") != nil || Because(nil, "x") != nil {
		t.Error("nil did not stay nil")
	}
}
