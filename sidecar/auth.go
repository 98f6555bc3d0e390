//go:build !kavach_noauth

package sidecar

// AuthOff is false: every route but the public ones needs a credential.
// Only a build with -tags kavach_noauth, for measurements, turns it off.
const AuthOff = false
