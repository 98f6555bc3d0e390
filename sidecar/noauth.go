//go:build kavach_noauth

package sidecar

// AuthOff is true only in builds with -tags kavach_noauth, made to measure
// what authentication costs (kavach bench --compare): every route is open.
// Never deploy such a build.
const AuthOff = true
