"""$name: the team's model code, imported by `tfship train --model $package.model:build_model`."""
