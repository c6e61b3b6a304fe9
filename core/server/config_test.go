package server

import (
	"strings"
	"testing"
	"time"
)

func TestConfigIngressBusyAbove(t *testing.T) {
	t.Setenv("DATABASE_URL", "postgres://localhost/ponte")
	t.Setenv("PONTE_MASTER_KEY", strings.Repeat("A", 43)+"=")
	t.Setenv("PONTE_INGRESS_BUSY_ABOVE", "5ms")
	cfg := ConfigFromEnv()
	if err := cfg.Validate(); err != nil {
		t.Fatal(err)
	}
	if cfg.IngressBusyAbove != 5*time.Millisecond {
		t.Errorf("IngressBusyAbove = %s, want 5ms", cfg.IngressBusyAbove)
	}
	for _, bad := range []string{"fast", "-1ms", "0s"} {
		t.Setenv("PONTE_INGRESS_BUSY_ABOVE", bad)
		cfg := ConfigFromEnv()
		if err := cfg.Validate(); err == nil || !strings.Contains(err.Error(), "PONTE_INGRESS_BUSY_ABOVE") {
			t.Errorf("PONTE_INGRESS_BUSY_ABOVE=%s: Validate = %v, want it named", bad, err)
		}
	}
}
