package engine

import (
	"slices"
	"sync"

	"github.com/open-policy-agent/opa/v1/ast"
	"github.com/open-policy-agent/opa/v1/topdown"
)

// virtualCache is the cache of rule values (and of function results) one
// evaluation keeps, as OPA's own does (topdown.NewVirtualCache): the same
// answers, but kept in one flat map per frame, keyed by the reference's
// hash, and reused from one decision to the next (vcachePool) instead of
// being built anew, a trie node and a hash map per element of every
// reference, on every decision. It serves one evaluation at a time.
type virtualCache struct {
	frames []map[int][]vcacheEntry
	// spare are emptied frames, kept for the next Push.
	spare []map[int][]vcacheEntry
}

type vcacheEntry struct {
	ref       ast.Ref
	value     *ast.Term
	undefined bool
}

var _ topdown.VirtualCache = (*virtualCache)(nil)

var vcachePool = sync.Pool{New: func() any {
	c := &virtualCache{}
	c.Push()
	return c
}}

// getVirtualCache returns an empty cache for one evaluation; putVirtualCache
// hands it back once the evaluation's result has been read.
func getVirtualCache() *virtualCache { return vcachePool.Get().(*virtualCache) }

func putVirtualCache(c *virtualCache) {
	for len(c.frames) > 1 {
		c.Pop()
	}
	clear(c.frames[0])
	vcachePool.Put(c)
}

// Push starts a new, empty frame (a with statement's scope).
func (c *virtualCache) Push() {
	var f map[int][]vcacheEntry
	if n := len(c.spare); n > 0 {
		f, c.spare = c.spare[n-1], c.spare[:n-1]
	} else {
		f = map[int][]vcacheEntry{}
	}
	c.frames = append(c.frames, f)
}

// Pop drops the top frame and everything in it.
func (c *virtualCache) Pop() {
	n := len(c.frames) - 1
	f := c.frames[n]
	c.frames = c.frames[:n]
	clear(f)
	c.spare = append(c.spare, f)
}

// Get returns the value cached for ref in the top frame; (nil, true) when
// ref is cached as undefined, (nil, false) when it is not cached.
func (c *virtualCache) Get(ref ast.Ref) (*ast.Term, bool) {
	for _, e := range c.frames[len(c.frames)-1][ref.Hash()] {
		if e.ref.Equal(ref) {
			if e.undefined {
				return nil, true
			}
			return e.value, false
		}
	}
	return nil, false
}

// Put caches value for ref in the top frame; a nil value marks ref as
// undefined. The reference is copied: the evaluator reuses the slices of
// the references it asks about.
func (c *virtualCache) Put(ref ast.Ref, value *ast.Term) {
	f := c.frames[len(c.frames)-1]
	h := ref.Hash()
	es := f[h]
	for i := range es {
		if es[i].ref.Equal(ref) {
			if value != nil {
				es[i].value = value
			} else {
				es[i].undefined = true
			}
			return
		}
	}
	f[h] = append(es, vcacheEntry{ref: slices.Clone(ref), value: value, undefined: value == nil})
}

// Keys lists the references with a value in the top frame.
func (c *virtualCache) Keys() []ast.Ref {
	var keys []ast.Ref
	for _, es := range c.frames[len(c.frames)-1] {
		for _, e := range es {
			if e.value != nil {
				keys = append(keys, e.ref)
			}
		}
	}
	return keys
}

// baseCache is the cache of data read from the store during one
// evaluation, as OPA's own (a trie by reference element, where a value
// cached at a reference answers for every reference below it, and caching
// a value erases what was cached below it), with its nodes and maps reused
// from one decision to the next (bcachePool).
type baseCache struct {
	root *bcacheNode
	// used are the nodes handed out since the last reset; free, those
	// ready to be handed out again.
	used, free []*bcacheNode
}

type bcacheNode struct {
	value    ast.Value
	children map[ast.Value]*bcacheNode
}

var _ topdown.BaseCache = (*baseCache)(nil)

var bcachePool = sync.Pool{New: func() any { return &baseCache{root: &bcacheNode{}} }}

func getBaseCache() *baseCache { return bcachePool.Get().(*baseCache) }

func putBaseCache(c *baseCache) {
	c.root.reset()
	for _, n := range c.used {
		n.reset()
	}
	c.free = append(c.free, c.used...)
	clear(c.used)
	c.used = c.used[:0]
	bcachePool.Put(c)
}

func (n *bcacheNode) reset() {
	n.value = nil
	clear(n.children)
}

// Get returns the value cached at ref or above it (the part of it at ref),
// nil if there is none.
func (c *baseCache) Get(ref ast.Ref) ast.Value {
	node := c.root
	for i := range ref {
		node = node.children[ref[i].Value]
		if node == nil {
			return nil
		} else if node.value != nil {
			if len(ref) == 1 && ast.IsScalar(node.value) {
				return node.value
			}
			result, err := node.value.Find(ref[i+1:])
			if err != nil {
				return nil
			}
			return result
		}
	}
	return nil
}

// Put caches value at ref, erasing what was cached below it.
func (c *baseCache) Put(ref ast.Ref, value ast.Value) {
	node := c.root
	for i := range ref {
		child, ok := node.children[ref[i].Value]
		if !ok {
			child = c.node()
			if node.children == nil {
				node.children = map[ast.Value]*bcacheNode{}
			}
			node.children[ref[i].Value] = child
		}
		node = child
	}
	node.value = value
	clear(node.children)
}

func (c *baseCache) node() *bcacheNode {
	var n *bcacheNode
	if k := len(c.free); k > 0 {
		n, c.free = c.free[k-1], c.free[:k-1]
	} else {
		n = &bcacheNode{}
	}
	c.used = append(c.used, n)
	return n
}
