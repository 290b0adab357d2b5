package gitexec

import (
	"slices"
	"testing"
)

func TestPartialCloneOnlyForProtocolV2UploadPack(t *testing.T) {
	tests := []struct {
		verb Verb
		env  []string
		want bool
	}{
		{UploadPack, []string{"GIT_PROTOCOL=version=2"}, true},
		{UploadPack, []string{"PATH=/bin", "GIT_PROTOCOL=object-format=sha1:version=2"}, true},
		{UploadPack, nil, false},
		{UploadPack, []string{"GIT_PROTOCOL=version=1"}, false},
		{UploadPack, []string{"GIT_PROTOCOL=version=20"}, false},
		{UploadPack, []string{"GIT_PROTOCOLX=version=2"}, false},
		{ReceivePack, []string{"GIT_PROTOCOL=version=2"}, false},
		{UploadArchive, []string{"GIT_PROTOCOL=version=2"}, false},
	}
	for _, tt := range tests {
		got := slices.Contains(partialCloneConfig(tt.verb, tt.env), "uploadpack.allowFilter=true")
		if got != tt.want {
			t.Errorf("%s with %q: filters allowed %v, want %v", tt.verb, tt.env, got, tt.want)
		}
		// Never the settings that would serve staged refs by id.
		for _, c := range gitArgs(tt.verb, partialCloneConfig(tt.verb, tt.env)...) {
			if c == "uploadpack.allowReachableSHA1InWant=true" || c == "uploadpack.allowAnySHA1InWant=true" ||
				c == "uploadpack.allowTipSHA1InWant=true" {
				t.Errorf("%s with %q: %s", tt.verb, tt.env, c)
			}
		}
	}
}
