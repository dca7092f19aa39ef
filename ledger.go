package aigrid

import (
	"context"
	"strconv"
	"time"
)

// Ledger accounts. A tenant's account is "tenant:ID"; the others belong to
// the operator. Every transaction's entries sum to zero, and an account's
// balance is the sum of its entries: positive on a tenant's account is credit
// the tenant may spend.
const (
	AccountRevenue      = "revenue"       // what tenants paid for usage
	AccountCash         = "cash"          // top-ups paid to the operator
	AccountAdjustments  = "adjustments"   // the other side of manual corrections
	AccountVoucherFloat = "voucher_float" // vouchers sold and not yet redeemed
	AccountVoucherSales = "voucher_sales" // what voucher sellers owe for minted vouchers
)

// TenantAccount is the ledger account of a tenant.
func TenantAccount(tenantID int64) string { return "tenant:" + strconv.FormatInt(tenantID, 10) }

// Transaction kinds.
const (
	TxUsage         = "usage"
	TxTopUp         = "topup"
	TxAdjustment    = "adjustment"
	TxVoucherMint   = "voucher_mint"
	TxVoucherRedeem = "voucher_redeem"
	TxVoucherVoid   = "voucher_void"
)

// LedgerTx is one balanced, immutable transaction. Key makes it idempotent:
// writing a key that is already there changes nothing.
type LedgerTx struct {
	ID       int64     `json:"id"`
	Key      string    `json:"key"`
	Kind     string    `json:"kind"`
	TenantID int64     `json:"tenant_id,omitempty"`
	At       time.Time `json:"at"`
	Memo     string    `json:"memo,omitempty"`
	Actor    string    `json:"actor,omitempty"`
	Entries  []Entry   `json:"entries"`
	// Usage is the metered call a usage transaction charges.
	Usage *UsageRecord `json:"usage,omitempty"`
	// Journal is where the meter's settlement journal holds a usage
	// transaction; zero for one that did not come from the journal.
	Journal JournalPos `json:"-"`
}

// JournalPos is a place in the meter's settlement journal: the end of a
// record, in bytes from the start of its segment, which the segment's number
// orders. The ledger records how far it has applied the journal in the same
// database transaction as what it applied, so that a replay of the journal
// after a crash applies each record once.
type JournalPos struct {
	Segment uint64
	Offset  int64
}

// Before reports whether p comes before q in the journal.
func (p JournalPos) Before(q JournalPos) bool {
	return p.Segment < q.Segment || p.Segment == q.Segment && p.Offset < q.Offset
}

// Entry moves Amount into Account (negative: out of it).
type Entry struct {
	Account string `json:"account"`
	Amount  Money  `json:"amount"`
}

// Balanced reports whether the entries sum to zero.
func (t *LedgerTx) Balanced() bool {
	var sum Money
	for _, e := range t.Entries {
		sum += e.Amount
	}
	return sum == 0 && len(t.Entries) > 0
}

// Charge is the price of one call, block by block.
type Charge struct {
	Blocks  []BlockCharge `json:"blocks"`
	Total   Money         `json:"total"`
	OffPeak bool          `json:"off_peak"`
}

// BlockCharge is the part of a call priced in one block of the tariff.
type BlockCharge struct {
	// Block is the block's number in the tariff, from 1.
	Block  int   `json:"block"`
	Input  int64 `json:"input_tokens"`
	Output int64 `json:"output_tokens"`
	Amount Money `json:"amount"`
	// Exact is the block's price before rounding, in millionths of a minor
	// unit. The meter rounds the month's running sum of exact prices, not
	// each call's, so that many small calls are not each rounded to zero.
	Exact int64 `json:"exact_micro"`
}

// UsageRecord is one metered call.
type UsageRecord struct {
	ID               string    `json:"id"`
	TenantID         int64     `json:"-"`
	KeyID            string    `json:"key_id,omitempty"`
	At               time.Time `json:"created"`
	Service          string    `json:"service_model"`
	Provider         string    `json:"provider"`
	Model            string    `json:"offer_model"`
	PromptTokens     int64     `json:"prompt_tokens"`
	CompletionTokens int64     `json:"completion_tokens"`
	Charge           Charge    `json:"charge"`
	// Cost is what the offer cost the operator, for margins.
	Cost      Money `json:"-"`
	Estimated bool  `json:"estimated,omitempty"`
}

// Voucher is a batch-minted prepaid code; only its hash is kept.
type Voucher struct {
	Hash       string     `json:"-"`
	Batch      string     `json:"batch"`
	Value      Money      `json:"value"`
	ExpiresAt  *time.Time `json:"expires_at,omitempty"`
	CreatedAt  time.Time  `json:"created_at"`
	RedeemedAt *time.Time `json:"redeemed_at,omitempty"`
	RedeemedBy int64      `json:"redeemed_by,omitempty"`
}

// VoucherBatch is one minted batch, its vouchers counted by state at some
// time. Each voucher is in one state: redeemed; voided (cancelled by the
// operator before it was redeemed); expired (neither, and past its expiry);
// or outstanding (redeemable). Minted is all of them.
type VoucherBatch struct {
	Batch     string
	MintedAt  time.Time
	ExpiresAt *time.Time
	// Value is each voucher's.
	Value                                          Money
	Minted, Redeemed, Voided, Expired, Outstanding VoucherSum
}

// VoucherSum is how many vouchers, and their value.
type VoucherSum struct {
	Count int64
	Value Money
}

// Add adds s to u.
func (u *VoucherSum) Add(s VoucherSum) { u.Count += s.Count; u.Value += s.Value }

// AddStates adds o's vouchers, state by state, to b's: the totals of
// several batches.
func (b *VoucherBatch) AddStates(o *VoucherBatch) {
	b.Minted.Add(o.Minted)
	b.Redeemed.Add(o.Redeemed)
	b.Voided.Add(o.Voided)
	b.Expired.Add(o.Expired)
	b.Outstanding.Add(o.Outstanding)
}

// VoucherVoid is what a void did: the batch of the vouchers it selected,
// those it voided, and how many of the others were redeemed or voided before.
type VoucherVoid struct {
	Batch                   string
	Voided                  VoucherSum
	Redeemed, AlreadyVoided int64
}

// UsageLine is a tenant's usage of one service model in one tariff block.
type UsageLine struct {
	Service      string `json:"service_model"`
	Block        int    `json:"block"`
	Calls        int64  `json:"calls"`
	InputTokens  int64  `json:"input_tokens"`
	OutputTokens int64  `json:"output_tokens"`
	Amount       Money  `json:"amount"`
	// Exact sums the blocks' exact prices (see BlockCharge.Exact).
	Exact int64 `json:"-"`
}

// RevenueLine is what one provider's offers earned and cost over a period.
type RevenueLine struct {
	Provider string `json:"provider"`
	Calls    int64  `json:"calls"`
	Tokens   int64  `json:"tokens"`
	Revenue  Money  `json:"revenue"`
	Cost     Money  `json:"cost"`
	Margin   Money  `json:"margin"`
}

// LedgerService keeps accounts, tariffs, the ledger, usage and vouchers.
type LedgerService interface {
	// CommitTxs writes transactions in one database transaction (a group
	// commit); applied[i] is false for a transaction the ledger holds
	// already: a usage transaction at or before the journal position
	// applied so far (see JournalPos), or whose call comes earlier in txs,
	// or, when it has no position, whose call the ledger holds; any other
	// transaction whose key exists. Usage transactions with positions come
	// in the journal's order, and the last one's is recorded as applied.
	CommitTxs(ctx context.Context, txs []*LedgerTx) (applied []bool, err error)
	// TxByKey returns the transaction written under key, with its entries;
	// ENotFound when there is none.
	TxByKey(ctx context.Context, key string) (*LedgerTx, error)
	// JournalApplied is the journal position applied so far (zero: none).
	JournalApplied(ctx context.Context) (JournalPos, error)
	// AccountBalance is the sum of an account's entries before time before
	// (zero time: all of them).
	AccountBalance(ctx context.Context, account string, before time.Time) (Money, error)
	// TokensSince sums the tokens of a tenant's calls at or after t.
	TokensSince(ctx context.Context, tenantID int64, t time.Time) (int64, error)
	// ListUsage returns up to limit of a tenant's calls in [from, to), oldest first.
	ListUsage(ctx context.Context, tenantID int64, from, to time.Time, limit int) ([]*UsageRecord, error)
	// UsageByBlock sums a tenant's usage in [from, to) by service model and tariff block.
	UsageByBlock(ctx context.Context, tenantID int64, from, to time.Time) ([]UsageLine, error)
	// ListTxs returns the non-usage transactions that touch an account in [from, to).
	ListTxs(ctx context.Context, account string, from, to time.Time) ([]*LedgerTx, error)
	// Revenue sums usage by provider in [from, to).
	Revenue(ctx context.Context, from, to time.Time) ([]RevenueLine, error)
	// CheckLedger sums every transaction and every account, and reports any
	// transaction that does not balance.
	CheckLedger(ctx context.Context) (unbalanced []string, err error)

	GetAccount(ctx context.Context, tenantID int64) (*Account, error)
	PutAccount(ctx context.Context, a *Account) error
	ListAccounts(ctx context.Context) ([]*Account, error)
	PutTariff(ctx context.Context, t *Tariff) error
	ListTariffs(ctx context.Context) ([]*Tariff, error)

	// CreateVouchers stores minted vouchers and their balancing transaction.
	CreateVouchers(ctx context.Context, vs []*Voucher, tx *LedgerTx) error
	// RedeemVoucher spends the voucher of hash for the tenant at time at, in
	// one transaction with tx (whose amounts it sets to the voucher's value),
	// and returns the value. ENotFound, or EConflict when spent, or EInvalid
	// when expired.
	RedeemVoucher(ctx context.Context, hash string, tenantID int64, at time.Time, tx *LedgerTx) (Money, error)
	// VoucherBatches counts every batch's vouchers by state at time at,
	// newest batch first.
	VoucherBatches(ctx context.Context, at time.Time) ([]VoucherBatch, error)
	// VoidVouchers voids, at time at, the vouchers of batch, or the one
	// voucher of hash (exactly one of them is given), that are neither
	// redeemed nor voided, in one transaction with tx, whose entries it sets
	// to take their value out of the float. When none is left it writes
	// nothing, tx included. ENotFound when no voucher is selected.
	VoidVouchers(ctx context.Context, batch, hash string, at time.Time, tx *LedgerTx) (VoucherVoid, error)
}
