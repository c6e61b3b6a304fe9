package api

import (
	"context"
	"net/http"
	"reflect"
	"sort"
	"time"

	"github.com/danielgtaylor/huma/v2"
)

// readyTimeout bounds the readiness checks, so a hung dependency makes
// /readyz fail rather than hang the orchestrator's probe.
const readyTimeout = 3 * time.Second

type healthOutput struct {
	Body struct {
		Status string `json:"status" example:"ok" doc:"Always ok: the process answers."`
	}
}

type readyOutput struct {
	Status int
	Body   readyBody
}

type readyBody struct {
	Status string            `json:"status" enum:"ok,unavailable" doc:"ok when every check passes."`
	Checks map[string]string `json:"checks" doc:"Each check's result: ok, or why it failed."`
}

func (s *server) registerHealth() {
	huma.Register(s.api, huma.Operation{
		OperationID: "health",
		Method:      http.MethodGet,
		Path:        "/healthz",
		Summary:     "Liveness: the process is up",
		Tags:        []string{tagOperations},
	}, func(ctx context.Context, _ *struct{}) (*healthOutput, error) {
		out := &healthOutput{}
		out.Body.Status = "ok"
		return out, nil
	})

	huma.Register(s.api, huma.Operation{
		OperationID: "ready",
		Method:      http.MethodGet,
		Path:        "/readyz",
		Summary:     "Readiness: the database, Temporal and the plugins are reachable",
		Description: "Answers 503 with the failing checks while any check fails.",
		Tags:        []string{tagOperations},
		Responses: map[string]*huma.Response{
			"503": {Description: "A check failed", Content: map[string]*huma.MediaType{"application/json": {Schema: s.api.OpenAPI().Components.Schemas.Schema(reflect.TypeFor[readyBody](), true, "")}}},
		},
	}, func(ctx context.Context, _ *struct{}) (*readyOutput, error) {
		out := &readyOutput{Status: http.StatusOK, Body: readyBody{Status: "ok", Checks: map[string]string{}}}
		if s.deps.Ready == nil {
			return out, nil
		}
		ctx, cancel := context.WithTimeout(ctx, readyTimeout)
		defer cancel()
		results := s.deps.Ready(ctx)
		names := make([]string, 0, len(results))
		for name := range results {
			names = append(names, name)
		}
		sort.Strings(names)
		for _, name := range names {
			if err := results[name]; err != nil {
				out.Status = http.StatusServiceUnavailable
				out.Body.Status = "unavailable"
				out.Body.Checks[name] = err.Error()
				continue
			}
			out.Body.Checks[name] = "ok"
		}
		return out, nil
	})
}
