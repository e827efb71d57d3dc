# Role-based access: may `input.user` perform `input.action`?
# Users come from the example data service (a "service that owns the data"), roles too;
# opal-mesh keeps both in OPA and changes them live when an update is published.
package app.rbac

default allow := false

# Fail closed: while the data here is stale (the client's stream has been down longer than
# OPAL_MESH_MAX_STALENESS_SECONDS, it is too far behind the log, or its last update
# failed), a revoked role may still be in it, so nothing is allowed. The client keeps
# data.system.opal.stale current; data.system.opal.stale_reasons says why.
allow if {
	not data.system.opal.stale
	some role in data.users[input.user].roles
	input.action in data.roles[role]
}

# Which roles grant the action, for explaining a decision.
granting_roles contains role if {
	some role in data.users[input.user].roles
	input.action in data.roles[role]
}
