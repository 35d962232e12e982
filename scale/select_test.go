package scale

import (
	"slices"
	"testing"
)

func TestSelector(t *testing.T) {
	apps := []string{"my-app-1", "my-app-2", "my-app-10", "my-app-a", "other-app", "my-api", "tenant-b"}
	tests := []struct {
		include, exclude []string
		want             []string
	}{
		{[]string{"my-app-*"}, nil, []string{"my-app-1", "my-app-2", "my-app-10", "my-app-a"}},
		{[]string{"my-app-?"}, nil, []string{"my-app-1", "my-app-2", "my-app-a"}},
		{[]string{"my-app-[1-2]"}, nil, []string{"my-app-1", "my-app-2"}},
		{[]string{"{other-app,tenant-*}"}, nil, []string{"other-app", "tenant-b"}},
		{[]string{"my-*", "tenant-b"}, []string{"my-app-1*", "my-api"}, []string{"my-app-2", "my-app-a", "tenant-b"}},
		{[]string{"other-app"}, nil, []string{"other-app"}},
	}
	for _, tt := range tests {
		s, err := NewSelector(tt.include, tt.exclude)
		if err != nil {
			t.Fatalf("NewSelector(%q, %q): %v", tt.include, tt.exclude, err)
		}
		var got []string
		for _, a := range apps {
			if s.Match(a) {
				got = append(got, a)
			}
		}
		if !slices.Equal(got, tt.want) {
			t.Errorf("include %q exclude %q: matched %q, want %q", tt.include, tt.exclude, got, tt.want)
		}
	}
}

func TestSelectorNames(t *testing.T) {
	s, _ := NewSelector([]string{"app-a", "app-b", "app-c"}, []string{"app-b"})
	if names, ok := s.Names(); !ok || !slices.Equal(names, []string{"app-a", "app-c"}) {
		t.Errorf("Names() = %q, %v; want the plain names less the excluded one", names, ok)
	}
	s, _ = NewSelector([]string{"app-a", "app-*"}, nil)
	if _, ok := s.Names(); ok {
		t.Error("Names() is ok with a glob among the patterns: the org must be listed")
	}
	if _, err := NewSelector([]string{"app-[a"}, nil); err == nil {
		t.Error("malformed glob accepted")
	}
}
