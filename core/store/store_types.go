package store

import (
	"encoding/json"
	"errors"
	"time"
)

// ErrNotFound is returned when a row does not exist or belongs to another
// tenant; callers cannot tell the two apart, on purpose.
var ErrNotFound = errors.New("not found")

// Connection is a tenant's configured instance of a connector, without its
// secret fields.
type Connection struct {
	ID        string `json:"id"`
	TenantID  string `json:"-"`
	Connector string `json:"connector"`
	Name      string `json:"name"`
	Status    string `json:"status"` // "active" or "disabled"
	// StatusReason says why Ponte disabled the connection (the provider
	// revoked it); empty when the user disabled it or it is active.
	StatusReason string          `json:"status_reason,omitempty"`
	Config       json.RawMessage `json:"config"` // non-secret fields only
	// SecretFields names the secret fields that hold a value (never the values).
	SecretFields []string  `json:"secret_fields"`
	CreatedAt    time.Time `json:"created_at"`
	UpdatedAt    time.Time `json:"updated_at"`
}
