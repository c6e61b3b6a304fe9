package api

import (
	"context"
	"errors"
	"log/slog"
	"net/http"
	"strconv"
	"strings"

	"github.com/danielgtaylor/huma/v2"

	"github.com/ponte-hub/ponte/core/store"
)

// internal logs an unexpected error with the request id and answers a 500
// that reveals nothing about it.
func (s *server) internal(ctx context.Context, doing string, err error) error {
	s.log.ErrorContext(ctx, doing, slog.Any("error", err), slog.String("request_id", RequestID(ctx)))
	return huma.Error500InternalServerError("internal error; quote the X-Request-Id header when reporting it")
}

// invalid answers 422 with one problem+json "errors" entry per field
// problem; fields are located under the request body.
func invalid(detail string, problems ...store.FieldProblem) error {
	errs := make([]error, len(problems))
	for i, p := range problems {
		errs[i] = &huma.ErrorDetail{Location: "body." + p.Field, Message: p.Message}
	}
	return huma.Error422UnprocessableEntity(detail, errs...)
}

// storeError maps the store's typed errors; anything else is a 500.
func (s *server) storeError(ctx context.Context, doing, notFound string, err error) error {
	var ve *store.ValidationError
	switch {
	case errors.Is(err, store.ErrNotFound):
		return huma.Error404NotFound(notFound)
	case errors.As(err, &ve):
		return invalid("the request is invalid", ve.Problems...)
	case errors.Is(err, store.ErrInvalidCursor):
		return huma.Error400BadRequest("invalid cursor", &huma.ErrorDetail{Location: "query.cursor", Message: "not a cursor returned by this API"})
	}
	return s.internal(ctx, doing, err)
}

// unavailable is a 503 problem with a Retry-After header.
func unavailable(detail string, retryAfter int) error {
	return huma.ErrorWithHeaders(huma.Error503ServiceUnavailable(detail), http.Header{"Retry-After": []string{strconv.Itoa(retryAfter)}})
}

// redactErrorValues removes the submitted values huma's request validation
// copies into problem details for body locations: a request body can carry
// connector secrets, and a 422 must not echo them back (or into a proxy's
// log). Values of query, path and header parameters are kept; they help and
// are not secret.
func redactErrorValues(_ huma.Context, _ string, v any) (any, error) {
	if m, ok := v.(*huma.ErrorModel); ok {
		for _, d := range m.Errors {
			if d != nil && (d.Location == "body" || strings.HasPrefix(d.Location, "body.")) {
				d.Value = nil
			}
		}
	}
	return v, nil
}
