package api

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"time"

	"github.com/danielgtaylor/huma/v2"

	"github.com/ponte-hub/ponte/core/contacts"
	"github.com/ponte-hub/ponte/core/store"
)

// Tags of the inbox, contacts and users operations in the OpenAPI document.
const (
	tagInbox    = "Inbox"
	tagContacts = "Contacts"
	tagUsers    = "Users"
)

// ContactBody is a contact as the API shows it.
type ContactBody struct {
	ID          string                     `json:"id"`
	Phone       string                     `json:"phone,omitempty" example:"+393331234567" doc:"E.164. Absent for a contact WhatsApp knows only by its LID (a linked device received its message without the number) until the number is learnt."`
	WaID        string                     `json:"wa_id,omitempty" doc:"WhatsApp's id of the number."`
	LID         string                     `json:"lid,omitempty" example:"123456789012345@lid" doc:"The linked-device id (WhatsApp's hidden-number identity), when known."`
	Name        string                     `json:"name,omitempty"`
	Tags        []string                   `json:"tags"`
	Fields      map[string]json.RawMessage `json:"fields" doc:"Custom fields."`
	ExternalIDs map[string]string          `json:"external_ids" doc:"Ids in other systems, e.g. {\"shopify_customer\": \"123\"}."`
	MergedInto  string                     `json:"merged_into,omitempty" doc:"Set on a contact linked into another; its phone now resolves to that contact."`
	MergedAt    *time.Time                 `json:"merged_at,omitempty"`
	CreatedAt   time.Time                  `json:"created_at"`
	UpdatedAt   time.Time                  `json:"updated_at"`
}

func contactBody(c contacts.Contact) ContactBody {
	b := ContactBody{ID: c.ID, Phone: c.Phone, WaID: c.WaID, LID: c.LID, Name: c.Name, Tags: c.Tags, Fields: c.Fields,
		ExternalIDs: c.ExternalIDs, MergedInto: c.MergedInto, MergedAt: c.MergedAt, CreatedAt: c.CreatedAt, UpdatedAt: c.UpdatedAt}
	if b.Tags == nil {
		b.Tags = []string{}
	}
	if b.Fields == nil {
		b.Fields = map[string]json.RawMessage{}
	}
	if b.ExternalIDs == nil {
		b.ExternalIDs = map[string]string{}
	}
	return b
}

type listContactsInput struct {
	Phone  string `query:"phone" maxLength:"40" doc:"Contacts whose E.164 phone starts with this (e.g. +39333)."`
	Name   string `query:"name" maxLength:"200" doc:"Contacts whose name contains this, case-insensitively."`
	Tag    string `query:"tag" maxLength:"64"`
	Cursor string `query:"cursor" maxLength:"500"`
	Limit  int    `query:"limit" minimum:"0" maximum:"200" doc:"Page size (default 50)."`
}

type contactList struct {
	Body struct {
		Data       []ContactBody `json:"data" doc:"Newest first."`
		NextCursor string        `json:"next_cursor"`
	}
}

type contactIDInput struct {
	ID string `path:"id" maxLength:"100"`
}

type contactOutput struct {
	Body ContactBody
}

type patchContactInput struct {
	ID   string `path:"id" maxLength:"100"`
	Body struct {
		Name        *string                    `json:"name,omitempty" maxLength:"200" doc:"Empty clears the name."`
		LID         *string                    `json:"lid,omitempty" maxLength:"200"`
		Tags        *[]string                  `json:"tags,omitempty" maxItems:"100" doc:"Replaces the tags."`
		Fields      map[string]json.RawMessage `json:"fields,omitempty" doc:"Merged into the custom fields; null removes a field."`
		ExternalIDs map[string]string          `json:"external_ids,omitempty" doc:"Merged into the external ids; an empty string removes one."`
	}
}

type contactTagInput struct {
	ID  string `path:"id" maxLength:"100"`
	Tag string `path:"tag" maxLength:"64"`
}

type linkContactInput struct {
	ID   string `path:"id" maxLength:"100"`
	Body struct {
		IntoContactID string `json:"into_contact_id" minLength:"1" maxLength:"100" doc:"The existing contact the sender is."`
	}
}

func (s *server) registerContacts() {
	if s.deps.Inbox == nil {
		return
	}
	s.api.OpenAPI().Tags = append(s.api.OpenAPI().Tags,
		&huma.Tag{Name: tagInbox, Description: "Conversations with contacts on the tenant's numbers, their messages and notes, and a live event stream. Operators see only the conversations assigned to them."},
		&huma.Tag{Name: tagContacts, Description: "The tenant's contacts, one per phone number."},
	)
	inbox := s.deps.Inbox
	all := []string{store.RoleAdmin, store.RoleManager, store.RoleOperator, store.RoleReadOnly}
	actors := []string{store.RoleAdmin, store.RoleManager, store.RoleOperator}

	op := allowRoles(operation("list-contacts", http.MethodGet, "/v1/contacts", "List contacts", tagContacts, store.ScopeRead), all...)
	op.Description = "Newest first; contacts linked into another are left out. Operators see the contacts of the conversations assigned to them."
	op.Errors = append(op.Errors, http.StatusBadRequest)
	huma.Register(s.api, op, func(ctx context.Context, in *listContactsInput) (*contactList, error) {
		p := principal(ctx)
		f := contacts.ContactFilter{Phone: in.Phone, Name: in.Name, Tag: in.Tag, Cursor: in.Cursor, Limit: in.Limit}
		if p.Role == store.RoleOperator {
			f.AssignedTo = p.UserID
		}
		cs, next, err := inbox.ListContacts(ctx, p.TenantID, f)
		if err != nil {
			return nil, s.storeError(ctx, "listing contacts", "contact not found", err)
		}
		out := &contactList{}
		out.Body.Data = make([]ContactBody, len(cs))
		for i, c := range cs {
			out.Body.Data[i] = contactBody(c)
		}
		out.Body.NextCursor = next
		return out, nil
	})

	op = allowRoles(operation("get-contact", http.MethodGet, "/v1/contacts/{id}", "Get a contact", tagContacts, store.ScopeRead), all...)
	op.Errors = append(op.Errors, http.StatusNotFound)
	huma.Register(s.api, op, func(ctx context.Context, in *contactIDInput) (*contactOutput, error) {
		if err := s.requireContactAccess(ctx, in.ID, false); err != nil {
			return nil, err
		}
		c, err := inbox.GetContact(ctx, tenant(ctx), in.ID)
		if err != nil {
			return nil, s.storeError(ctx, "reading contact", "contact not found", err)
		}
		return &contactOutput{Body: contactBody(c)}, nil
	})

	op = allowRoles(operation("update-contact", http.MethodPatch, "/v1/contacts/{id}", "Update a contact", tagContacts, store.ScopeWrite), actors...)
	op.Errors = append(op.Errors, http.StatusNotFound, http.StatusUnprocessableEntity)
	huma.Register(s.api, op, func(ctx context.Context, in *patchContactInput) (*contactOutput, error) {
		if err := s.requireContactAccess(ctx, in.ID, true); err != nil {
			return nil, err
		}
		c, err := inbox.UpdateContact(ctx, tenant(ctx), in.ID, contacts.ContactUpdate{Name: in.Body.Name, LID: in.Body.LID,
			Tags: in.Body.Tags, Fields: in.Body.Fields, ExternalIDs: in.Body.ExternalIDs})
		if err != nil {
			return nil, s.storeError(ctx, "updating contact", "contact not found", err)
		}
		return &contactOutput{Body: contactBody(c)}, nil
	})

	op = allowRoles(operation("add-contact-tag", http.MethodPut, "/v1/contacts/{id}/tags/{tag}", "Tag a contact", tagContacts, store.ScopeWrite), actors...)
	op.Errors = append(op.Errors, http.StatusNotFound, http.StatusUnprocessableEntity)
	huma.Register(s.api, op, func(ctx context.Context, in *contactTagInput) (*contactOutput, error) {
		if err := s.requireContactAccess(ctx, in.ID, true); err != nil {
			return nil, err
		}
		c, err := inbox.AddTag(ctx, tenant(ctx), in.ID, in.Tag)
		if err != nil {
			var ve *store.ValidationError
			if errors.As(err, &ve) {
				return nil, huma.Error422UnprocessableEntity("invalid tag", &huma.ErrorDetail{Location: "path.tag", Message: ve.Problems[0].Message, Value: in.Tag})
			}
			return nil, s.storeError(ctx, "tagging contact", "contact not found", err)
		}
		return &contactOutput{Body: contactBody(c)}, nil
	})

	op = allowRoles(operation("remove-contact-tag", http.MethodDelete, "/v1/contacts/{id}/tags/{tag}", "Untag a contact", tagContacts, store.ScopeWrite), actors...)
	op.Errors = append(op.Errors, http.StatusNotFound)
	huma.Register(s.api, op, func(ctx context.Context, in *contactTagInput) (*contactOutput, error) {
		if err := s.requireContactAccess(ctx, in.ID, true); err != nil {
			return nil, err
		}
		c, err := inbox.RemoveTag(ctx, tenant(ctx), in.ID, in.Tag)
		if err != nil {
			return nil, s.storeError(ctx, "untagging contact", "contact not found", err)
		}
		return &contactOutput{Body: contactBody(c)}, nil
	})

	op = operation("link-contact", http.MethodPost, "/v1/contacts/{id}/link", "Link a contact into another", tagContacts, store.ScopeWrite)
	op.Description = "Links this contact (typically an unknown sender) into an existing one: its conversations and messages move there, " +
		"missing data (WhatsApp id, name, tags, fields, external ids) is copied, and this contact is kept as a record with " +
		"`merged_into` set, so later messages from its number land on the existing contact. Admins and managers only."
	op.Errors = append(op.Errors, http.StatusNotFound, http.StatusUnprocessableEntity, http.StatusConflict)
	huma.Register(s.api, op, func(ctx context.Context, in *linkContactInput) (*contactOutput, error) {
		if err := s.requireRole(ctx, store.RoleAdmin, store.RoleManager); err != nil {
			return nil, err
		}
		p := principal(ctx)
		c, err := inbox.Link(ctx, p.TenantID, in.ID, in.Body.IntoContactID, p.UserID)
		if errors.Is(err, contacts.ErrAlreadyMerged) {
			return nil, huma.Error409Conflict("one of the contacts was already linked into another")
		}
		if err != nil {
			return nil, s.storeError(ctx, "linking contacts", "contact not found", err)
		}
		return &contactOutput{Body: contactBody(c)}, nil
	})
}
