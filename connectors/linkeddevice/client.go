package linkeddevice

import (
	"context"
	"time"

	"go.mau.fi/whatsmeow"
	waE2E "go.mau.fi/whatsmeow/proto/waE2E"
	"go.mau.fi/whatsmeow/types"
	waLog "go.mau.fi/whatsmeow/util/log"
)

// waClient is what the connector uses of a whatsmeow client: the methods of
// *whatsmeow.Client it calls, plus a few reads of the client's device store.
// In production it is a *whatsmeow.Client (wrapped by liveClient for the
// store reads); the linkeddevice_fake build swaps in a fake that tests feed
// with whatsmeow's own event values.
type waClient interface {
	AddEventHandler(handler whatsmeow.EventHandler) uint32
	ConnectContext(ctx context.Context) error
	Disconnect()
	IsConnected() bool
	IsLoggedIn() bool
	Logout(ctx context.Context) error
	GetQRChannel(ctx context.Context) (<-chan whatsmeow.QRChannelItem, error)
	PairPhone(ctx context.Context, phone string, showPushNotification bool, clientType whatsmeow.PairClientType, clientDisplayName string) (string, error)
	SendMessage(ctx context.Context, to types.JID, message *waE2E.Message, extra ...whatsmeow.SendRequestExtra) (whatsmeow.SendResponse, error)
	Upload(ctx context.Context, plaintext []byte, appInfo whatsmeow.MediaType) (whatsmeow.UploadResponse, error)
	DownloadMediaWithPath(ctx context.Context, directPath string, encFileHash, fileHash, mediaKey []byte, fileLength int, mediaType whatsmeow.MediaType, mmsType string) ([]byte, error)
	MarkRead(ctx context.Context, ids []types.MessageID, timestamp time.Time, chat, sender types.JID, receiptTypeExtra ...types.ReceiptType) error
	SendChatPresence(ctx context.Context, jid types.JID, state types.ChatPresence, media types.ChatPresenceMedia) error
	IsOnWhatsApp(ctx context.Context, phones []string) ([]types.IsOnWhatsAppResponse, error)

	// device returns what the device store knows of the linked account.
	device() deviceInfo
	// phoneForLID returns the phone-number JID of a LID from the store's
	// LID map, or the empty JID when it is not known.
	phoneForLID(ctx context.Context, lid types.JID) (types.JID, error)
	// forget deletes the device from the store (after a logout); deleting a
	// device that is not stored succeeds.
	forget(ctx context.Context) error
}

// deviceInfo is the linked account as the device store knows it.
type deviceInfo struct {
	ID       types.JID // empty until paired
	LID      types.JID
	PushName string
	Platform string
	Business string
}

// backend makes whatsmeow clients for sessions: the device store and the
// client constructor. The production backend is whatsmeow's sqlstore on
// Postgres with real clients; the fake build has an in-memory one.
type backend interface {
	// client returns a client for the device with the given JID, or for a
	// new device to pair when jid is empty. found is false when jid is set
	// but the device is not in the store (it was logged out and deleted).
	client(ctx context.Context, jid types.JID, log waLog.Logger) (c waClient, found bool, err error)
}

// liveClient is a production *whatsmeow.Client with the store reads the
// connector needs.
type liveClient struct {
	*whatsmeow.Client
}

func (c liveClient) device() deviceInfo {
	d := c.Store
	return deviceInfo{ID: d.GetJID(), LID: d.GetLID(), PushName: d.PushName, Platform: d.Platform, Business: d.BusinessName}
}

func (c liveClient) phoneForLID(ctx context.Context, lid types.JID) (types.JID, error) {
	if c.Store.LIDs == nil {
		return types.EmptyJID, nil
	}
	pn, err := c.Store.LIDs.GetPNForLID(ctx, lid)
	if err != nil {
		return types.EmptyJID, err
	}
	return pn, nil
}

func (c liveClient) forget(ctx context.Context) error {
	if c.Store.ID == nil || c.Store.Container == nil {
		return nil
	}
	return c.Store.Delete(ctx)
}
