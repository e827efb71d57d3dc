# Role-based access: may `input.user` perform `input.action`?
# Users come from the example data service (a "service that owns the data"), roles too;
# opal-mesh keeps both in OPA and changes them live when an update is published.
package app.rbac

default allow := false

allow if {
	some role in data.users[input.user].roles
	input.action in data.roles[role]
}

# Which roles grant the action, for explaining a decision.
granting_roles contains role if {
	some role in data.users[input.user].roles
	input.action in data.roles[role]
}
