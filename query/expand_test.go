package query

import (
	"strings"
	"testing"
)

func TestExpand(t *testing.T) {
	t.Setenv("FAS_API_TOKEN", "secret-token")
	t.Setenv("HOME", "/root")
	t.Setenv("APP", "from-env")
	tests := []struct {
		query, want string
	}{
		{`up{app="$APP_NAME"}`, `up{app="my-app"}`},
		{`up{app="${APP_NAME}"}`, `up{app="my-app"}`},
		{`$APP_NAME-$APP_NAME ${APP_NAME}`, `my-app-my-app my-app`},
		{`up{app="$APP_NAMES"}`, `up{app="$APP_NAMES"}`},
		{`up{app="$APP_NAME_2"}`, `up{app="$APP_NAME_2"}`},
		{`up{token="$FAS_API_TOKEN"}`, `up{token="$FAS_API_TOKEN"}`},
		{`up{home="${HOME}"}`, `up{home="${HOME}"}`},
		{`up{app="$APP"}`, `up{app="$APP"}`},
		{`${APP_NAME`, `${APP_NAME`},
		{`$`, `$`},
		{`$$APP_NAME`, `$my-app`},
		{`sum by (app) (queue_depth)`, `sum by (app) (queue_depth)`},
		{`up{app=~"$APP_NAME|x"}[5m] > 0`, `up{app=~"my-app|x"}[5m] > 0`},
	}
	for _, tt := range tests {
		if got := Expand(tt.query, "my-app"); got != tt.want {
			t.Errorf("Expand(%q) = %q, want %q", tt.query, got, tt.want)
		}
		if strings.Contains(Expand(tt.query, "my-app"), "secret-token") {
			t.Errorf("Expand(%q) pulled a secret out of the environment", tt.query)
		}
	}
}

func TestUsesAppName(t *testing.T) {
	tests := map[string]bool{
		`up{app="$APP_NAME"}`:        true,
		`up{app="${APP_NAME}"}`:      true,
		`x$APP_NAME`:                 true,
		`sum by (app) (queue_depth)`: false,
		`up{app="$APP_NAMES"}`:       false,
		`up{app="${HOME}"}`:          false,
		`up{app="APP_NAME"}`:         false,
	}
	for q, want := range tests {
		if got := UsesAppName(q); got != want {
			t.Errorf("UsesAppName(%q) = %v, want %v", q, got, want)
		}
	}
}

func TestValidAppName(t *testing.T) {
	valid := []string{"a", "my-app-7", "7up", "app-", strings.Repeat("a", 63), "a--b"}
	for _, name := range valid {
		if err := ValidAppName(name); err != nil {
			t.Errorf("ValidAppName(%q) = %v, want nil", name, err)
		}
	}
	invalid := map[string]string{
		"":                      "empty",
		strings.Repeat("a", 64): "64 characters, at most 63",
		"-app":                  "must start with a letter or digit",
		"My-App":                `character 'M'`,
		"my_app":                `character '_'`,
		"my.app":                `character '.'`,
		`x"} or vector(1) #`:    `character '"'`,
		"app\n":                 `character '\n'`,
		"café":                  `character 'é'`,
		"a b":                   `character ' '`,
	}
	for name, want := range invalid {
		err := ValidAppName(name)
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("ValidAppName(%q) = %v, want error containing %q", name, err, want)
		}
	}
}
