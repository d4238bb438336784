"""tfship's tests, grouped like the package: tests/<group>/ tests tfship/<group> (steps under tfship/steps/)."""
