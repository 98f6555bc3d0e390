// Package domain holds Kavach's model: agents and their permissions with
// typed constraints, delegations, approvals, audit rows, API keys and the
// actors behind changes. It imports nothing from the project: store maps
// rows to these types, engine builds policy data from them, and service
// maps them to the API's wire shapes (package api).
package domain
