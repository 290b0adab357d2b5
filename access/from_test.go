package access

import "testing"

func TestCheckFrom(t *testing.T) {
	for _, tt := range []struct {
		in string
		ok bool
	}{
		{"", true},
		{"127.0.0.1", true},
		{"10.0.0.0/8,192.0.2.7,!192.0.2.8", true},
		{"*.cluster.example,fe80::1", true},
		{"a b", false},
		{"10.0.0.1,", false},
		{",10.0.0.1", false},
		{"!", false},
		{`10.0.0.1"`, false},
		{"10.0.0.1'", false},
		{"10.0.0.1\n10.0.0.2", false},
		{"10.0.0.1\t", false},
		{`10.0.0.1",command="sh`, false},
		{"10.0.0.1\\", false},
	} {
		err := CheckFrom(tt.in)
		if (err == nil) != tt.ok {
			t.Errorf("CheckFrom(%q) = %v, want ok %v", tt.in, err, tt.ok)
		}
	}
	if got := From("10.0.0.1", "command=\"x\",restrict k"); got != `from="10.0.0.1",command="x",restrict k` {
		t.Errorf("From = %q", got)
	}
	if got := From("", "line"); got != "line" {
		t.Errorf("From with no patterns = %q", got)
	}
}
