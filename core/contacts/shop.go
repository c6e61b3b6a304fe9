package contacts

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"

	"github.com/ponte-hub/ponte/core/dispatch"
	"github.com/ponte-hub/ponte/plugins/sdk/commerce"
)

// shopContactPayload is what a customer.* or order.created payload (see
// plugins/sdk/commerce) says about the customer.
type shopContactPayload struct {
	// ID is the customer's id on customer events.
	ID string `json:"id"`
	commerce.Contact
}

// ShopRoute returns the router that brings shops' customers into contacts: a
// customer.created / customer.updated or order.created event with a phone
// gets an in-process delivery that resolves the contact of that phone
// (created when new, named when it has no name yet) and records the shop's
// customer id among its external ids, as "<connector>_customer" (e.g.
// "shopify_customer"). The inbox then shows who a WhatsApp number is at the
// shop, and a later import or CRM sync finds the same person.
func (s *Service) ShopRoute() dispatch.Router {
	return dispatch.RouterFunc(func(_ context.Context, ev dispatch.Event) ([]dispatch.Delivery, error) {
		customerEvent := ev.Type == commerce.EventCustomerCreated || ev.Type == commerce.EventCustomerUpdated
		if !customerEvent && ev.Type != commerce.EventOrderCreated {
			return nil, nil
		}
		var p shopContactPayload
		if err := json.Unmarshal(ev.Payload, &p); err != nil {
			return nil, dispatch.Permanent(fmt.Errorf("contacts: decoding %s payload of event %d: %w", ev.Type, ev.ID, err))
		}
		customerID := p.CustomerID
		if customerEvent && customerID == "" {
			customerID = p.ID
		}
		if p.Phone == "" {
			return nil, nil // nothing to reach on WhatsApp; the shop's record stays the shop's
		}
		name := strings.TrimSpace(p.FirstName + " " + p.LastName)
		return []dispatch.Delivery{{Apply: func(ctx context.Context) error {
			c, err := s.Resolve(ctx, ev.TenantID, p.Phone, ContactHints{Name: name})
			if err != nil {
				return fmt.Errorf("contacts: resolving the customer of event %d: %w", ev.ID, err)
			}
			key := ev.Connector + "_customer"
			if customerID == "" || c.ExternalIDs[key] == customerID || !fieldKeyPattern.MatchString(key) {
				return nil
			}
			if _, err := s.UpdateContact(ctx, ev.TenantID, c.ID, ContactUpdate{ExternalIDs: map[string]string{key: customerID}}); err != nil {
				return fmt.Errorf("contacts: recording the shop customer id of event %d: %w", ev.ID, err)
			}
			return nil
		}}}, nil
	})
}
