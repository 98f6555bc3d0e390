package store

import (
	"context"
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/kavach-dev/kavach/domain"
)

// The contract of the change feed: every change of state appends to it in
// commit order, readers page through it, pruning keeps the newest entry,
// and a replica listening hears another's commits.
func changeFeedTests() []storeTest {
	return []storeTest{
		{name: "EveryWriteFeedsTheChangeFeed", fn: testEveryWriteFeedsTheChangeFeed},
		{name: "ChangesSincePages", fn: testChangesSincePages},
		{name: "PruneChanges", fn: testPruneChanges},
		{name: "ListenHearsAnotherReplica", opens: testListenHearsAnotherReplica, replicas: true},
		{name: "LateCommitIsNeverSkipped", opens: testLateCommitIsNeverSkipped, replicas: true},
	}
}

// A change numbered first but committed last is never skipped by a reader
// that resumes after the highest seq it has read: the feed's lock makes a
// second writer wait for the first to commit before it takes a number.
// Without the lock (an engine that hands out numbers at insert, as
// sequences and AUTO_INCREMENT do), the second writer would commit seq
// N+1, the reader would move past it, and seq N, committed later, would
// be lost to it.
func testLateCommitIsNeverSkipped(t *testing.T, b backend) {
	first, second := b.pair(t)
	ctx := t.Context()
	numbered, release := make(chan struct{}), make(chan struct{})
	firstDone := make(chan error, 1)
	go func() {
		firstDone <- first.withTx(ctx, func(tx *txn) error {
			if err := first.recordChange(ctx, tx, ChangeAgent, "late"); err != nil {
				return err
			}
			close(numbered)
			<-release // commit only once the second writer has had its turn
			return nil
		})
	}()
	select {
	case <-numbered:
	case err := <-firstDone:
		t.Fatalf("first writer: %v", err)
	}
	secondDone := make(chan error, 1)
	go func() {
		secondDone <- second.withTx(ctx, func(tx *txn) error { return second.recordChange(ctx, tx, ChangeAgent, "early") })
	}()
	// The second writer commits now where nothing makes it wait (then the
	// reader below sees its seq first), or waits for the first's commit.
	select {
	case err := <-secondDone:
		secondDone <- err
	case <-time.After(300 * time.Millisecond):
	}
	seen := map[string]int64{}
	read := func(after int64) int64 {
		t.Helper()
		got, err := second.ChangesSince(ctx, after, 10)
		if err != nil {
			t.Fatal(err)
		}
		for _, c := range got {
			seen[c.EntityID], after = c.Seq, c.Seq
		}
		return after
	}
	applied := read(0)
	close(release)
	if err := <-firstDone; err != nil {
		t.Fatalf("first writer: %v", err)
	}
	if err := <-secondDone; err != nil {
		t.Fatalf("second writer: %v", err)
	}
	read(applied)
	if _, ok := seen["late"]; !ok || len(seen) != 2 {
		t.Errorf("a reader resuming after seq %d saw %v; want both changes, the one committed late included", applied, seen)
	}
}

func testEveryWriteFeedsTheChangeFeed(t *testing.T, s *Store, c *clock) {
	ctx := t.Context()
	start, err := s.LatestChange(ctx)
	if err != nil {
		t.Fatal(err)
	}
	a, err := s.CreateAgent(ctx, newAgent("u", "h1", domain.Permission{Resource: "*", Actions: []string{"*"}}), 0)
	if err != nil {
		t.Fatal(err)
	}
	b, _ := s.CreateAgent(ctx, newAgent("u", "h2"), 0)
	name := "x"
	_, _ = s.UpdateAgent(ctx, a.ID, AgentUpdate{Name: &name})
	_, _ = s.RotateToken(ctx, a.ID, "h3")
	d, err := s.CreateDelegation(ctx, domain.Delegation{FromAgent: a.ID, ToAgent: b.ID, Depth: 1, MaxDepth: 1,
		ExpiresAt: c.Now().Add(time.Hour), Permissions: []domain.Grant{{Resource: "x", Actions: []string{"r"}}}})
	if err != nil {
		t.Fatal(err)
	}
	_, _ = s.RevokeDelegation(ctx, d.ID)
	_, _ = s.RevokeDelegation(ctx, d.ID) // no change: already revoked
	ap, err := s.CreateApproval(ctx, domain.Approval{AgentID: a.ID, OwnerID: "u", Action: "r", Resource: "x", ExpiresAt: c.Now().Add(time.Hour)})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.ResolveApproval(ctx, ap.ID, domain.ApprovalApproved, ""); err != nil {
		t.Fatal(err)
	}
	if _, err := s.InsertAudit(ctx, domain.AuditEntry{AgentID: a.ID, Action: "r", Resource: "x", Result: domain.ResultAllowed, Code: "allowed", Reason: "r"},
		Consumption{ApprovalID: ap.ID}); err != nil {
		t.Fatal(err)
	}
	_, _ = s.InsertAudit(ctx, domain.AuditEntry{Action: "r", Resource: "x", Result: domain.ResultDenied, Code: "c", Reason: "r"}, Consumption{}) // no change
	_, _ = s.RevokeAgent(ctx, b.ID)

	changes, err := s.ChangesSince(ctx, start, 100)
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for i, ch := range changes {
		got = append(got, ch.Kind+":"+ch.EntityID)
		if i > 0 && ch.Seq <= changes[i-1].Seq {
			t.Errorf("sequence not increasing: %d after %d", ch.Seq, changes[i-1].Seq)
		}
	}
	want := []string{"agent:" + a.ID, "agent:" + b.ID, "agent:" + a.ID, "agent:" + a.ID, "delegation:" + d.ID, "agent:" + b.ID,
		"delegation:" + d.ID, "approval:" + ap.ID, "approval:" + ap.ID, "approval:" + ap.ID, "agent:" + b.ID}
	if len(got) != len(want) {
		t.Fatalf("changes = %v; want %v", got, want)
	}
	for i := range want {
		if got[i] != want[i] {
			t.Errorf("change %d = %s; want %s", i, got[i], want[i])
		}
	}
	latest, _ := s.LatestChange(ctx)
	if latest != changes[len(changes)-1].Seq {
		t.Errorf("LatestChange = %d; want %d", latest, changes[len(changes)-1].Seq)
	}
	if more, _ := s.ChangesSince(ctx, latest, 100); len(more) != 0 {
		t.Errorf("ChangesSince(latest) = %v; want none", more)
	}
}

// changeOf makes one change (an agent created), returning its sequence.
func changeOf(t *testing.T, s *Store, hash string) int64 {
	t.Helper()
	if _, err := s.CreateAgent(t.Context(), newAgent("u", hash), 0); err != nil {
		t.Fatal(err)
	}
	seq, err := s.LatestChange(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	return seq
}

func seqs(cs []Change) []int64 {
	out := make([]int64, len(cs))
	for i, c := range cs {
		out[i] = c.Seq
	}
	return out
}

func testChangesSincePages(t *testing.T, s *Store, _ *clock) {
	ctx := t.Context()
	if seq, err := s.LatestChange(ctx); err != nil || seq != 0 {
		t.Fatalf("LatestChange(empty feed) = %d, %v; want 0", seq, err)
	}
	if got, err := s.ChangesSince(ctx, 0, 10); err != nil || len(got) != 0 {
		t.Fatalf("ChangesSince(empty feed) = %v, %v; want none", got, err)
	}
	var all []int64
	for i := range 7 {
		all = append(all, changeOf(t, s, fmt.Sprint("h", i)))
	}
	// A reader pages through the feed, oldest first, resuming after the
	// last sequence it saw: it sees every change once.
	var seen []int64
	after := int64(0)
	for pages := 1; ; pages++ {
		page, err := s.ChangesSince(ctx, after, 3)
		if err != nil {
			t.Fatal(err)
		}
		if len(page) > 3 {
			t.Fatalf("ChangesSince(%d, 3) = %d changes; want at most 3", after, len(page))
		}
		if len(page) == 0 {
			if pages != 4 {
				t.Errorf("pages of 3 over 7 changes = %d (the last empty); want 4", pages)
			}
			break
		}
		for _, c := range page {
			if c.Kind != ChangeAgent || c.EntityID == "" {
				t.Errorf("change %d = %+v; want an agent's", c.Seq, c)
			}
		}
		seen = append(seen, seqs(page)...)
		after = page[len(page)-1].Seq
	}
	if !slices.Equal(seen, all) || !slices.IsSorted(all) {
		t.Errorf("changes paged = %v; want %v, increasing", seen, all)
	}
	if got, err := s.ChangesSince(ctx, all[len(all)-1], 10); err != nil || len(got) != 0 {
		t.Errorf("ChangesSince(latest) = %v, %v; want none", got, err)
	}
}

func testPruneChanges(t *testing.T, s *Store, c *clock) {
	ctx := t.Context()
	if n, err := s.PruneChanges(ctx, c.Now()); err != nil || n != 0 {
		t.Fatalf("PruneChanges(empty feed) = %d, %v; want 0", n, err)
	}
	start := c.Now()
	var all []int64
	for i := range 4 { // at start, +1m, +2m, +3m
		all = append(all, changeOf(t, s, fmt.Sprint("h", i)))
		c.Add(time.Minute)
	}
	left := func() []int64 {
		t.Helper()
		got, err := s.ChangesSince(ctx, 0, 100)
		if err != nil {
			t.Fatal(err)
		}
		return seqs(got)
	}
	prune := func(before time.Time, want int64) {
		t.Helper()
		if n, err := s.PruneChanges(ctx, before); err != nil || n != want {
			t.Errorf("PruneChanges(start+%s) = %d, %v; want %d", before.Sub(start), n, err, want)
		}
	}
	prune(start.Add(-time.Millisecond), 0)
	// At or before the time: the entries at start and start+1m.
	prune(start.Add(time.Minute), 2)
	if got := left(); !slices.Equal(got, all[2:]) {
		t.Errorf("changes after PruneChanges(start+1m) = %v; want %v", got, all[2:])
	}
	// The newest entry stays whatever the time, so the sequence goes on
	// from it and LatestChange still tells where the feed stands.
	prune(start.Add(time.Hour), 1)
	if got := left(); !slices.Equal(got, all[3:]) {
		t.Errorf("changes after PruneChanges(start+1h) = %v; want only the newest %v", got, all[3:])
	}
	prune(start.Add(time.Hour), 0)
	if seq, err := s.LatestChange(ctx); err != nil || seq != all[3] {
		t.Errorf("LatestChange after pruning = %d, %v; want %d", seq, err, all[3])
	}
	if next := changeOf(t, s, "h-next"); next <= all[3] {
		t.Errorf("sequence after pruning = %d; want more than %d", next, all[3])
	}
}

// testPollsWithoutListening: where the engine has nothing to listen to
// (MySQL), CanListen says so, Listen returns at once instead of holding the
// follower, and the feed alone carries another replica's commits, in
// order, to a follower that asks after the seq it applied.
func testPollsWithoutListening(t *testing.T, follower, writer *Store) {
	if follower.CanListen() {
		t.Fatal("CanListen() = true on an engine without notifications; want false")
	}
	done := make(chan struct{})
	go func() {
		defer close(done)
		follower.Listen(t.Context(), func() { t.Error("Listen notified on an engine without notifications") }, func(error) {})
	}()
	select {
	case <-done:
	case <-time.After(5 * time.Second):
		t.Fatal("Listen still running after 5s on an engine without notifications; want it to return at once")
	}
	applied, err := follower.LatestChange(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	var want []int64
	for i := range 3 {
		want = append(want, changeOf(t, writer, fmt.Sprint("p", i)))
	}
	got, err := follower.ChangesSince(t.Context(), applied, 10)
	if err != nil || len(got) != 3 || got[0].Seq != want[0] || got[2].Seq != want[2] {
		t.Fatalf("ChangesSince(%d) on the follower = %+v, %v; want the writer's seqs %v", applied, got, err, want)
	}
}

// A replica listening hears the commits of another: once it listens, a
// write on the other store is followed by a notification. (How it is
// driven is the dialect's: LISTEN/NOTIFY, a watched file. A watched file
// may notify while the commit is being written, before the change is
// visible; followers also poll, so the note is not checked against the
// feed.)
func testListenHearsAnotherReplica(t *testing.T, b backend) {
	follower, writer := b.pair(t)
	if b.polls {
		testPollsWithoutListening(t, follower, writer)
		return
	}
	if !follower.CanListen() {
		t.Fatalf("CanListen() = false on a %s database shared by replicas; want true", b.name)
	}
	ctx, cancel := context.WithCancel(t.Context())
	notes := make(chan struct{}, 1)
	errs := make(chan error, 1)
	done := make(chan struct{})
	go func() {
		defer close(done)
		follower.Listen(ctx, func() {
			select {
			case notes <- struct{}{}:
			default: // one pending note says as much as many
			}
		}, func(err error) {
			select {
			case errs <- err:
			default:
			}
		})
	}()
	defer func() {
		cancel()
		<-done // Listen returns once ctx ends
	}()
	wait := func(what string) {
		t.Helper()
		select {
		case <-notes:
		case err := <-errs:
			t.Fatalf("Listen: %v", err)
		case <-time.After(20 * time.Second):
			t.Fatalf("no notification %s", what)
		}
	}
	wait("on listening")
	for i := range 3 {
		select { // forget notes of earlier writes
		case <-notes:
		default:
		}
		changeOf(t, writer, fmt.Sprint("h", i))
		wait(fmt.Sprint("after write ", i, " on the other replica"))
	}
}
