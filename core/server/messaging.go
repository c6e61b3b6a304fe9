package server

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync/atomic"

	"github.com/ponte-hub/ponte/core/consent"
	"github.com/ponte-hub/ponte/core/contacts"
	"github.com/ponte-hub/ponte/core/invoke"
	"github.com/ponte-hub/ponte/core/messaging"
	"github.com/ponte-hub/ponte/core/store"
	"github.com/ponte-hub/ponte/core/templates"
)

// messagingParts are the services of the path of a message: contacts and
// conversations, consent, templates and the sending core, wired to each other.
type messagingParts struct {
	contacts  *contacts.Service
	hub       *contacts.Hub
	consent   *consent.Service
	templates *templates.Service
	messages  *messaging.Service
}

// newMessaging builds the messaging services. Consent and messaging need each
// other (a send is checked by consent; consent's STOP confirmation is a send),
// so consent gets a notifier that reaches the messaging service once it exists.
func newMessaging(st *store.Store, invoker *invoke.Invoker, log *slog.Logger) (*messagingParts, error) {
	pool := st.Pool()
	contactsSvc, err := contacts.New(contacts.Config{Pool: pool, Logger: log.With("component", "contacts")})
	if err != nil {
		return nil, fmt.Errorf("creating the contacts service: %w", err)
	}
	notifier := &lateNotifier{}
	consentSvc := consent.New(pool, consent.Options{
		Notifier: notifier,
		Contacts: consent.ContactResolverFunc(func(ctx context.Context, tenantID, phone string) (string, error) {
			c, err := contactsSvc.Resolve(ctx, tenantID, phone, contacts.ContactHints{})
			return c.ID, err
		}),
		Logger: log.With("component", "consent"),
	})
	templatesSvc := templates.New(pool, invoker, templates.Options{})
	messagesSvc, err := messaging.New(messaging.Config{
		Pool:      pool,
		Invoker:   invoker,
		Consent:   messaging.ConsentService{Service: consentSvc},
		Guard:     messaging.ConsentService{Service: consentSvc},
		Templates: messaging.TemplateService{Service: templatesSvc},
		Pacing:    numbersPacing{pool: pool},
		Logger:    log.With("component", "messaging"),
	})
	if err != nil {
		return nil, fmt.Errorf("creating the messaging service: %w", err)
	}
	notifier.target.Store(&messaging.Notifier{Service: messagesSvc})
	return &messagingParts{
		contacts:  contactsSvc,
		hub:       contacts.NewHub(pool, log.With("component", "inbox-stream")),
		consent:   consentSvc,
		templates: templatesSvc,
		messages:  messagesSvc,
	}, nil
}

func (m *messagingParts) close() {
	m.hub.Close()
	m.messages.Close()
}

// lateNotifier is consent's Notifier, pointed at the messaging service after
// both exist.
type lateNotifier struct {
	target atomic.Pointer[messaging.Notifier]
}

func (n *lateNotifier) Notify(ctx context.Context, req consent.NotifyRequest) error {
	t := n.target.Load()
	if t == nil {
		return errors.New("consent confirmation before the messaging service started")
	}
	return t.Notify(ctx, req)
}
