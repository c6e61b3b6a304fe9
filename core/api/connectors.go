package api

import (
	"context"
	"errors"
	"net/http"

	"github.com/danielgtaylor/huma/v2"

	"github.com/ponte-hub/ponte/core/pluginhost"
	"github.com/ponte-hub/ponte/core/store"
	"github.com/ponte-hub/ponte/plugins/sdk"
)

// ConnectorBody is an installed connector as the API shows it.
type ConnectorBody struct {
	Name        string `json:"name" example:"stripe"`
	Version     string `json:"version" example:"1.0.0"`
	DisplayName string `json:"display_name" example:"Stripe"`
	// Available is false while the plugin is not running (crashed and being
	// restarted); connections of it can still be managed.
	Available bool         `json:"available" doc:"Whether the plugin is running right now."`
	Manifest  sdk.Manifest `json:"manifest" doc:"What the connector declares: its configuration fields (which are secret), the events it emits and the actions it offers."`
}

type connectorList struct {
	Body struct {
		Data []ConnectorBody `json:"data"`
	}
}

type connectorOutput struct {
	Body ConnectorBody
}

type connectorInput struct {
	Name string `path:"name" maxLength:"100" example:"stripe" doc:"The connector's name."`
}

func (s *server) connectorBodies() []ConnectorBody {
	running := map[string]bool{}
	for _, st := range s.deps.Connectors.Status() {
		running[st.Name] = st.Running
	}
	manifests := s.deps.Connectors.Manifests()
	out := make([]ConnectorBody, 0, len(manifests))
	for _, m := range manifests {
		out = append(out, ConnectorBody{Name: m.Name, Version: m.Version, DisplayName: m.DisplayName, Available: running[m.Name], Manifest: m})
	}
	return out
}

// manifest returns the manifest of an installed connector, from the
// registry's list rather than a running client, so connections can be managed
// while the plugin restarts.
func (s *server) manifest(name string) (sdk.Manifest, bool) {
	for _, m := range s.deps.Connectors.Manifests() {
		if m.Name == name {
			return m, true
		}
	}
	return sdk.Manifest{}, false
}

func (s *server) registerConnectors() {
	op := operation("list-connectors", http.MethodGet, "/v1/connectors", "List installed connectors", tagConnectors, store.ScopeRead)
	huma.Register(s.api, op, func(ctx context.Context, _ *struct{}) (*connectorList, error) {
		out := &connectorList{}
		out.Body.Data = s.connectorBodies()
		return out, nil
	})

	op = operation("get-connector", http.MethodGet, "/v1/connectors/{name}", "Get an installed connector", tagConnectors, store.ScopeRead)
	op.Errors = append(op.Errors, http.StatusNotFound)
	huma.Register(s.api, op, func(ctx context.Context, in *connectorInput) (*connectorOutput, error) {
		for _, c := range s.connectorBodies() {
			if c.Name == in.Name {
				return &connectorOutput{Body: c}, nil
			}
		}
		return nil, huma.Error404NotFound("no installed connector named " + in.Name)
	})
}

// isUnavailable reports whether err says a plugin is not running.
func isUnavailable(err error) bool { return errors.Is(err, pluginhost.ErrUnavailable) }
