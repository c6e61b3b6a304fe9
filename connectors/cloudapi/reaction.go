package cloudapi

import (
	"context"

	"github.com/ponte-hub/ponte/plugins/sdk"
	"github.com/ponte-hub/ponte/plugins/sdk/whatsapp"
)

// SendReactionParams are the parameters of send_reaction.
//
// Meta documents reactions as free-form messages ("Reaction messages"):
// they go only inside the 24-hour customer service window (131047
// outside it), they answer with a wamid like any send, and a reaction to a
// message that is more than 30 days old, is not in the conversation, was
// deleted or is itself a reaction is accepted by the call and then failed by
// a status webhook with code 131009. A successful reaction gets only the
// "sent" status webhook, never delivered or read.
type SendReactionParams struct {
	To string `json:"to"`
	// MessageID is the wamid of the message reacted to.
	MessageID string `json:"message_id"`
	// Emoji is one emoji, or empty to remove the reaction sent before.
	Emoji    string `json:"emoji"`
	LedgerID string `json:"ledger_id"`
}

// outReaction is the reaction object of a Graph API send. Emoji has no
// omitempty: Meta requires the field, and "" is how a reaction is removed.
type outReaction struct {
	MessageID string `json:"message_id"`
	Emoji     string `json:"emoji"`
}

// maxReactionTarget bounds the wamid reacted to; Meta's wamids are about 60
// characters, so anything far longer is a caller's mistake.
const maxReactionTarget = 256

// sendReaction sends (or, with an empty emoji, removes) a reaction. It goes
// through the same request builder and send path as every other message, so
// it carries the ledger id as biz_opaque_callback_data: Meta accepts that
// field on any message type and returns it on the reaction's "sent" status
// webhook, and on the "failed" one of a reaction to a message it will not
// take, which is how the ledger row is settled.
func (c *Connector) sendReaction(ctx context.Context, cfg Config, p SendReactionParams) (SendResult, error) {
	if p.MessageID == "" || len(p.MessageID) > maxReactionTarget {
		return SendResult{}, sdk.Invalid("message_id must be the wamid of the message reacted to (1 to %d characters)", maxReactionTarget)
	}
	if p.Emoji != "" && !whatsapp.IsEmoji(p.Emoji) {
		return SendResult{}, sdk.Invalid("emoji must be one emoji, or empty to remove the reaction")
	}
	// A reaction cannot quote a message: it has no context object.
	m, err := newOut(p.To, "reaction", "", p.LedgerID)
	if err != nil {
		return SendResult{}, err
	}
	m.Reaction = &outReaction{MessageID: p.MessageID, Emoji: p.Emoji}
	op := "sending reaction"
	if p.Emoji == "" {
		op = "removing reaction"
	}
	return c.send(ctx, cfg, op, m)
}
