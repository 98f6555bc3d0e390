package store

import (
	"errors"
	"fmt"
	"slices"
	"sync"
	"testing"
	"time"
)

// The contract of the MCP OAuth server's state: clients, requests decided
// once, codes redeemed once, refresh tokens rotated once (also when raced),
// grants revoking their tokens, signing keys, and the purge.
func oauthTests() []storeTest {
	return []storeTest{
		{name: "Clients", fn: testOAuthClients},
		{name: "RequestDecidedOnce", fn: testOAuthRequestDecidedOnce},
		{name: "CodeRedeemedOnce", fn: testOAuthCodeRedeemedOnce},
		{name: "RefreshRotation", fn: testOAuthRefreshRotation},
		{name: "Keys", fn: testOAuthKeys},
		{name: "Purge", fn: testPurgeOAuth},
		{name: "ConcurrentRedemption", fn: testOAuthConcurrentRedemption},
		{name: "UpgradeGivesTokensTheirGrantsScopes", opens: testOAuthUpgradeTokenScopes},
	}
}

func testOAuthClients(t *testing.T, s *Store, c *clock) {
	ctx := t.Context()
	cl, err := s.CreateOAuthClient(ctx, OAuthClient{Name: "Claude", RedirectURIs: []string{"http://127.0.0.1/cb"},
		GrantTypes: []string{"authorization_code", "refresh_token"}, AuthMethod: "none"})
	if err != nil {
		t.Fatalf("CreateOAuthClient = %v", err)
	}
	if cl.ID == "" {
		t.Fatal("CreateOAuthClient gave no ID")
	}
	got, err := s.GetOAuthClient(ctx, cl.ID)
	if err != nil {
		t.Fatalf("GetOAuthClient = %v", err)
	}
	if got.Name != "Claude" || !slices.Equal(got.RedirectURIs, cl.RedirectURIs) || !slices.Equal(got.GrantTypes, cl.GrantTypes) ||
		got.AuthMethod != "none" || got.SecretHash != "" || !got.CreatedAt.Equal(c.Now()) {
		t.Errorf("GetOAuthClient = %+v; want %+v", got, cl)
	}
	if _, err := s.GetOAuthClient(ctx, "nope"); !errors.Is(err, ErrNotFound) {
		t.Errorf("GetOAuthClient(unknown) = %v; want ErrNotFound", err)
	}
	fixed := OAuthClient{ID: "fixed", SecretHash: "abc", RedirectURIs: []string{"https://x/cb"}, AuthMethod: "client_secret_basic"}
	if _, err := s.CreateOAuthClient(ctx, fixed); err != nil {
		t.Fatalf("CreateOAuthClient(fixed) = %v", err)
	}
	if _, err := s.CreateOAuthClient(ctx, fixed); !errors.Is(err, ErrConflict) {
		t.Errorf("CreateOAuthClient(duplicate) = %v; want ErrConflict", err)
	}
}

func newOAuthRequest(c *clock, handle string) OAuthRequest {
	return OAuthRequest{HandleHash: handle, ClientID: "cli", RedirectURI: "https://app/cb", RedirectParam: "https://app/cb",
		Scopes: []string{"read", "offline_access"}, Resource: "https://mcp.example.com", State: "st", CodeChallenge: "ch",
		ExpiresAt: c.Now().Add(10 * time.Minute)}
}

func testOAuthRequestDecidedOnce(t *testing.T, s *Store, c *clock) {
	ctx := t.Context()
	for _, h := range []string{"h1", "h2", "h3"} {
		if err := s.CreateOAuthRequest(ctx, newOAuthRequest(c, h)); err != nil {
			t.Fatalf("CreateOAuthRequest(%s) = %v", h, err)
		}
	}
	if err := s.CreateOAuthRequest(ctx, newOAuthRequest(c, "h1")); !errors.Is(err, ErrConflict) {
		t.Errorf("CreateOAuthRequest(duplicate) = %v; want ErrConflict", err)
	}
	r, err := s.GetOAuthRequest(ctx, "h1")
	if err != nil || r.Status != OAuthPending || !slices.Equal(r.Scopes, []string{"read", "offline_access"}) || r.State != "st" {
		t.Fatalf("GetOAuthRequest = %+v, %v; want pending with scopes", r, err)
	}
	code := OAuthCode{Hash: "c1", UserID: "u1", AgentID: "agt_1", Scopes: []string{"read"}, ExpiresAt: c.Now().Add(time.Minute)}
	r, err = s.ApproveOAuthRequest(ctx, "h1", code)
	if err != nil || r.Status != OAuthApproved || r.UserID != "u1" {
		t.Fatalf("ApproveOAuthRequest = %+v, %v; want approved", r, err)
	}
	if _, err := s.ApproveOAuthRequest(ctx, "h1", OAuthCode{Hash: "c2"}); !errors.Is(err, ErrConflict) {
		t.Errorf("ApproveOAuthRequest(again) = %v; want ErrConflict", err)
	}
	if _, err := s.DenyOAuthRequest(ctx, "h1"); !errors.Is(err, ErrConflict) {
		t.Errorf("DenyOAuthRequest(approved) = %v; want ErrConflict", err)
	}
	if r, err := s.DenyOAuthRequest(ctx, "h2"); err != nil || r.Status != OAuthDenied {
		t.Errorf("DenyOAuthRequest = %+v, %v; want denied", r, err)
	}
	if _, err := s.DenyOAuthRequest(ctx, "nope"); !errors.Is(err, ErrNotFound) {
		t.Errorf("DenyOAuthRequest(unknown) = %v; want ErrNotFound", err)
	}
	c.Add(11 * time.Minute)
	if _, err := s.ApproveOAuthRequest(ctx, "h3", OAuthCode{Hash: "c3"}); !errors.Is(err, ErrExpired) {
		t.Errorf("ApproveOAuthRequest(expired) = %v; want ErrExpired", err)
	}
	got, err := s.GetOAuthCode(ctx, "c1")
	if err != nil || got.ClientID != "cli" || got.Resource != "https://mcp.example.com" || got.CodeChallenge != "ch" ||
		got.UsedAt != nil || got.AgentID != "agt_1" || !slices.Equal(got.Scopes, []string{"read"}) {
		t.Errorf("GetOAuthCode = %+v, %v; want the approved request's code", got, err)
	}
	if _, err := s.GetOAuthCode(ctx, "c3"); !errors.Is(err, ErrNotFound) {
		t.Errorf("GetOAuthCode(of expired request) = %v; want ErrNotFound", err)
	}
}

// approvedCode stores a request and approves it with code hash codeHash.
func approvedCode(t *testing.T, s *Store, c *clock, handle, codeHash string) {
	t.Helper()
	if err := s.CreateOAuthRequest(t.Context(), newOAuthRequest(c, handle)); err != nil {
		t.Fatal(err)
	}
	code := OAuthCode{Hash: codeHash, UserID: "u1", AgentID: "agt_1", Scopes: []string{"read", "offline_access"},
		ExpiresAt: c.Now().Add(time.Minute)}
	if _, err := s.ApproveOAuthRequest(t.Context(), handle, code); err != nil {
		t.Fatal(err)
	}
}

func issue(c *clock, jti, refresh string) OAuthIssue {
	is := OAuthIssue{Access: OAuthAccessToken{JTI: jti, ClientID: "cli", Scopes: []string{"read"}, ExpiresAt: c.Now().Add(time.Hour)}}
	if refresh != "" {
		is.Refresh = &OAuthRefreshToken{Hash: refresh, ExpiresAt: c.Now().Add(24 * time.Hour)}
	}
	return is
}

func testOAuthCodeRedeemedOnce(t *testing.T, s *Store, c *clock) {
	ctx := t.Context()
	approvedCode(t, s, c, "h1", "c1")
	g, err := s.RedeemOAuthCode(ctx, "c1", issue(c, "jti1", "r1"))
	if err != nil || g.ID == "" || g.AgentID != "agt_1" || g.UserID != "u1" || g.Resource != "https://mcp.example.com" {
		t.Fatalf("RedeemOAuthCode = %+v, %v; want a grant", g, err)
	}
	again, err := s.RedeemOAuthCode(ctx, "c1", issue(c, "jti2", "r2"))
	if !errors.Is(err, ErrConflict) || again.ID != g.ID {
		t.Fatalf("RedeemOAuthCode(replay) = %+v, %v; want ErrConflict naming grant %s", again, err, g.ID)
	}
	code, err := s.GetOAuthCode(ctx, "c1")
	if err != nil || code.UsedAt == nil || code.GrantID != g.ID {
		t.Errorf("GetOAuthCode(redeemed) = %+v, %v; want used, grant %s", code, err, g.ID)
	}
	if _, _, err := s.GetOAuthAccessToken(ctx, "jti2"); !errors.Is(err, ErrNotFound) {
		t.Errorf("GetOAuthAccessToken(of failed replay) = %v; want ErrNotFound", err)
	}
	// The record and its grant say what the token may claim.
	at, ag, err := s.GetOAuthAccessToken(ctx, "jti1")
	if err != nil || at.GrantID != g.ID || at.RevokedAt != nil || at.ClientID != "cli" || !slices.Equal(at.Scopes, []string{"read"}) ||
		!at.ExpiresAt.Equal(c.Now().Add(time.Hour)) || ag.ID != g.ID || ag.AgentID != "agt_1" || ag.UserID != "u1" ||
		ag.ClientID != "cli" || ag.Resource != "https://mcp.example.com" || !slices.Equal(ag.Scopes, []string{"read", "offline_access"}) {
		t.Fatalf("GetOAuthAccessToken = %+v, %+v, %v; want live, scopes [read], grant %s", at, ag, err, g.ID)
	}
	if _, err := s.RedeemOAuthCode(ctx, "nope", issue(c, "jti3", "")); !errors.Is(err, ErrNotFound) {
		t.Errorf("RedeemOAuthCode(unknown) = %v; want ErrNotFound", err)
	}
	// Revoking the grant revokes every token of the family.
	if err := s.RevokeOAuthGrant(ctx, g.ID); err != nil {
		t.Fatal(err)
	}
	if at, ag, err := s.GetOAuthAccessToken(ctx, "jti1"); err != nil || at.RevokedAt == nil || ag.RevokedAt == nil {
		t.Errorf("GetOAuthAccessToken(after grant revoked) = %+v, %v; want revoked", at, err)
	}
	if rt, _, err := s.GetOAuthRefreshToken(ctx, "r1"); err != nil || rt.RevokedAt == nil {
		t.Errorf("GetOAuthRefreshToken(after grant revoked) = %+v, %v; want revoked", rt, err)
	}
	if err := s.RevokeOAuthGrant(ctx, g.ID); err != nil {
		t.Errorf("RevokeOAuthGrant(again) = %v; want nil", err)
	}
}

func testOAuthRefreshRotation(t *testing.T, s *Store, c *clock) {
	ctx := t.Context()
	approvedCode(t, s, c, "h1", "c1")
	g, err := s.RedeemOAuthCode(ctx, "c1", issue(c, "jti1", "r1"))
	if err != nil {
		t.Fatal(err)
	}
	rt, grant, err := s.GetOAuthRefreshToken(ctx, "r1")
	if err != nil || rt.GrantID != g.ID || rt.UsedAt != nil || grant.ID != g.ID || !slices.Equal(grant.Scopes, []string{"read", "offline_access"}) {
		t.Fatalf("GetOAuthRefreshToken = %+v, %+v, %v", rt, grant, err)
	}
	c.Add(time.Minute)
	if err := s.RotateOAuthRefreshToken(ctx, "r1", issue(c, "jti2", "r2")); err != nil {
		t.Fatalf("RotateOAuthRefreshToken = %v", err)
	}
	if rt, _, err := s.GetOAuthRefreshToken(ctx, "r1"); err != nil || rt.UsedAt == nil {
		t.Errorf("old refresh token = %+v, %v; want used", rt, err)
	}
	if err := s.RotateOAuthRefreshToken(ctx, "r1", issue(c, "jti3", "r3")); !errors.Is(err, ErrConflict) {
		t.Errorf("RotateOAuthRefreshToken(reuse) = %v; want ErrConflict", err)
	}
	if err := s.RotateOAuthRefreshToken(ctx, "nope", issue(c, "jti4", "r4")); !errors.Is(err, ErrNotFound) {
		t.Errorf("RotateOAuthRefreshToken(unknown) = %v; want ErrNotFound", err)
	}
	if at, _, err := s.GetOAuthAccessToken(ctx, "jti2"); err != nil || at.GrantID != g.ID {
		t.Errorf("rotated access token = %+v, %v", at, err)
	}
	// One access token revoked alone leaves its siblings live.
	if err := s.RevokeOAuthAccessToken(ctx, "jti2"); err != nil {
		t.Fatal(err)
	}
	if at, _, _ := s.GetOAuthAccessToken(ctx, "jti2"); at.RevokedAt == nil {
		t.Error("access token jti2 not revoked")
	}
	if at, _, _ := s.GetOAuthAccessToken(ctx, "jti1"); at.RevokedAt != nil {
		t.Error("access token jti1 revoked with its sibling")
	}
	if err := s.RevokeOAuthGrant(ctx, g.ID); err != nil {
		t.Fatal(err)
	}
	if err := s.RotateOAuthRefreshToken(ctx, "r2", issue(c, "jti5", "r5")); !errors.Is(err, ErrConflict) {
		t.Errorf("RotateOAuthRefreshToken(revoked grant) = %v; want ErrConflict", err)
	}
}

func testOAuthKeys(t *testing.T, s *Store, c *clock) {
	ctx := t.Context()
	if _, err := s.ActiveOAuthKey(ctx, "ES256"); !errors.Is(err, ErrNotFound) {
		t.Errorf("ActiveOAuthKey(none) = %v; want ErrNotFound", err)
	}
	k1, err := s.EnsureOAuthKey(ctx, OAuthKey{ID: "k1", Alg: "ES256", PrivateKey: "p1"})
	if err != nil || k1.ID != "k1" {
		t.Fatalf("EnsureOAuthKey = %+v, %v; want k1", k1, err)
	}
	if k, err := s.EnsureOAuthKey(ctx, OAuthKey{ID: "k2", Alg: "ES256", PrivateKey: "p2"}); err != nil || k.ID != "k1" || k.PrivateKey != "p1" {
		t.Errorf("EnsureOAuthKey(second start) = %+v, %v; want k1 kept", k, err)
	}
	if _, err := s.RotateOAuthKey(ctx, OAuthKey{ID: "k3", Alg: "ES256", PrivateKey: "p3"}); err != nil {
		t.Fatal(err)
	}
	if k, err := s.ActiveOAuthKey(ctx, "ES256"); err != nil || k.ID != "k3" {
		t.Errorf("ActiveOAuthKey = %+v, %v; want k3", k, err)
	}
	keys, err := s.ListOAuthKeys(ctx, "ES256", c.Now().Add(-time.Hour))
	if err != nil || len(keys) != 2 || keys[0].ID != "k3" || keys[1].ID != "k1" || keys[1].RetiredAt == nil {
		t.Errorf("ListOAuthKeys = %+v, %v; want k3, then k1 retired", keys, err)
	}
	keys, err = s.ListOAuthKeys(ctx, "ES256", c.Now())
	if err != nil || len(keys) != 1 || keys[0].ID != "k3" {
		t.Errorf("ListOAuthKeys(after k1's tokens expired) = %+v, %v; want k3", keys, err)
	}
	// Resealing swaps the stored key only from what was read: of two
	// replicas resealing together, one does.
	if ok, err := s.ResealOAuthKey(ctx, "k1", "p1", "sealed1"); err != nil || !ok {
		t.Errorf("ResealOAuthKey(k1) = %v, %v; want true", ok, err)
	}
	if ok, err := s.ResealOAuthKey(ctx, "k1", "p1", "sealed1b"); err != nil || ok {
		t.Errorf("ResealOAuthKey(k1, already resealed) = %v, %v; want false", ok, err)
	}
	if ok, err := s.ResealOAuthKey(ctx, "nope", "p1", "x"); err != nil || ok {
		t.Errorf("ResealOAuthKey(unknown) = %v, %v; want false", ok, err)
	}
	keys, err = s.ListOAuthKeys(ctx, "ES256", time.Time{})
	if err != nil || len(keys) != 2 || keys[1].ID != "k1" || keys[1].PrivateKey != "sealed1" || keys[0].PrivateKey != "p3" {
		t.Errorf("ListOAuthKeys(all) = %+v, %v; want k3 as it was, k1 resealed", keys, err)
	}
}

func testPurgeOAuth(t *testing.T, s *Store, c *clock) {
	ctx := t.Context()
	approvedCode(t, s, c, "h1", "c1")
	if _, err := s.RedeemOAuthCode(ctx, "c1", issue(c, "jti1", "r1")); err != nil {
		t.Fatal(err)
	}
	if err := s.CreateOAuthRequest(ctx, newOAuthRequest(c, "h2")); err != nil {
		t.Fatal(err)
	}
	if err := s.PurgeOAuth(ctx, c.Now().Add(2*time.Hour)); err != nil {
		t.Fatalf("PurgeOAuth = %v", err)
	}
	if _, err := s.GetOAuthRequest(ctx, "h2"); !errors.Is(err, ErrNotFound) {
		t.Errorf("expired request after purge: %v; want ErrNotFound", err)
	}
	if _, _, err := s.GetOAuthAccessToken(ctx, "jti1"); !errors.Is(err, ErrNotFound) {
		t.Errorf("expired access token after purge: %v; want ErrNotFound", err)
	}
	if _, _, err := s.GetOAuthRefreshToken(ctx, "r1"); err != nil {
		t.Errorf("live refresh token after purge: %v; want kept", err)
	}
	if _, err := s.GetOAuthCode(ctx, "c1"); err != nil {
		t.Errorf("redeemed code of a live grant after purge: %v; want kept", err)
	}
	if err := s.PurgeOAuth(ctx, c.Now().Add(48*time.Hour)); err != nil {
		t.Fatal(err)
	}
	if err := s.PurgeOAuth(ctx, c.Now().Add(48*time.Hour)); err != nil {
		t.Fatal(err)
	}
	if _, err := s.GetOAuthCode(ctx, "c1"); !errors.Is(err, ErrNotFound) {
		t.Errorf("code of a purged grant: %v; want ErrNotFound", err)
	}
}

// race runs fn n times at once and returns the errors.
func race(n int, fn func(i int) error) []error {
	errs := make([]error, n)
	var wg sync.WaitGroup
	start := make(chan struct{})
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			<-start
			errs[i] = fn(i)
		}()
	}
	close(start)
	wg.Wait()
	return errs
}

// onlyOneWins checks exactly one call succeeded and the others failed with
// ErrConflict, and returns the winner's index.
func onlyOneWins(t *testing.T, what string, errs []error) int {
	t.Helper()
	winner := -1
	for i, err := range errs {
		switch {
		case err == nil && winner == -1:
			winner = i
		case err == nil:
			t.Errorf("%s: calls %d and %d both succeeded", what, winner, i)
		case !errors.Is(err, ErrConflict):
			t.Errorf("%s #%d = %v; want nil or ErrConflict", what, i, err)
		}
	}
	if winner == -1 {
		t.Fatalf("%s: no call succeeded: %v", what, errs)
	}
	return winner
}

// testOAuthConcurrentRedemption: of concurrent redemptions of one code, and
// concurrent rotations of one refresh token, exactly one wins; the losers'
// tokens are never stored, and each loser names the winner's grant.
func testOAuthConcurrentRedemption(t *testing.T, s *Store, c *clock) {
	ctx := t.Context()
	approvedCode(t, s, c, "h1", "c1")
	const n = 8
	grants := make([]OAuthGrant, n)
	errs := race(n, func(i int) error {
		var err error
		grants[i], err = s.RedeemOAuthCode(ctx, "c1", issue(c, fmt.Sprintf("jti-c%d", i), fmt.Sprintf("r-c%d", i)))
		return err
	})
	w := onlyOneWins(t, "RedeemOAuthCode", errs)
	for i := range n {
		_, _, atErr := s.GetOAuthAccessToken(ctx, fmt.Sprintf("jti-c%d", i))
		_, _, rtErr := s.GetOAuthRefreshToken(ctx, fmt.Sprintf("r-c%d", i))
		switch {
		case i == w && (atErr != nil || rtErr != nil):
			t.Errorf("winner's tokens: %v, %v; want stored", atErr, rtErr)
		case i != w && (!errors.Is(atErr, ErrNotFound) || !errors.Is(rtErr, ErrNotFound)):
			t.Errorf("loser %d's tokens: %v, %v; want ErrNotFound", i, atErr, rtErr)
		case i != w && grants[i].ID != grants[w].ID:
			t.Errorf("loser %d names grant %q; want the winner's %q", i, grants[i].ID, grants[w].ID)
		}
	}

	errs = race(n, func(i int) error {
		return s.RotateOAuthRefreshToken(ctx, fmt.Sprintf("r-c%d", w), issue(c, fmt.Sprintf("jti-r%d", i), fmt.Sprintf("r-r%d", i)))
	})
	w = onlyOneWins(t, "RotateOAuthRefreshToken", errs)
	for i := range n {
		_, _, err := s.GetOAuthRefreshToken(ctx, fmt.Sprintf("r-r%d", i))
		if (i == w) != (err == nil) {
			t.Errorf("successor %d of the rotated token: %v; want only the winner's (%d) stored", i, err, w)
		}
	}

	if err := s.CreateOAuthRequest(ctx, newOAuthRequest(c, "h2")); err != nil {
		t.Fatal(err)
	}
	errs = race(n, func(i int) error {
		if i%2 == 0 {
			_, err := s.DenyOAuthRequest(ctx, "h2")
			return err
		}
		_, err := s.ApproveOAuthRequest(ctx, "h2", OAuthCode{Hash: fmt.Sprintf("c2-%d", i), UserID: "u1", AgentID: "agt_1",
			ExpiresAt: c.Now().Add(time.Minute)})
		return err
	})
	w = onlyOneWins(t, "decide request", errs)
	for i := 1; i < n; i += 2 {
		if _, err := s.GetOAuthCode(ctx, fmt.Sprintf("c2-%d", i)); (i == w) != (err == nil) {
			t.Errorf("code of approval %d: %v; want only the winner's (%d) stored", i, err, w)
		}
	}
}

// Access tokens issued before their scopes were recorded (migration 7)
// get their grant's, so verification still finds what they may claim.
func testOAuthUpgradeTokenScopes(t *testing.T, b backend) {
	url := b.url(t)
	old := openStore(t, Options{URL: url, SkipMigrations: true})
	ms, err := readMigrations(old.dialect.migrations())
	if err != nil {
		t.Fatal(err)
	}
	exec := func(q string, args ...any) {
		t.Helper()
		if _, err := old.w.ExecContext(t.Context(), q, args...); err != nil {
			t.Fatalf("%s: %v", q, err)
		}
	}
	exec(`CREATE TABLE schema_migrations (version INTEGER PRIMARY KEY, name TEXT NOT NULL, applied_at BIGINT NOT NULL)`)
	for _, m := range ms {
		if m.version >= 7 {
			break
		}
		exec(m.sql)
		exec(`INSERT INTO schema_migrations (version, name, applied_at) VALUES (?, ?, 0)`, m.version, m.name)
	}
	exec(`INSERT INTO oauth_grants (id, client_id, user_id, agent_id, scopes, resource, created_at)
		VALUES ('ogr_1', 'cli', 'u1', 'agt_1', 'read offline_access', 'https://mcp.example.com', 1)`)
	exec(`INSERT INTO oauth_access_tokens (jti, grant_id, client_id, expires_at, created_at) VALUES ('jti1', 'ogr_1', 'cli', 2, 1)`)

	s, err := b.restart(t, old, url)
	if err != nil {
		t.Fatal(err)
	}
	at, g, err := s.GetOAuthAccessToken(t.Context(), "jti1")
	if err != nil || !slices.Equal(at.Scopes, []string{"read", "offline_access"}) || g.AgentID != "agt_1" {
		t.Errorf("GetOAuthAccessToken(issued before the upgrade) = %+v, %+v, %v; want the grant's scopes", at, g, err)
	}
}
