"""Image volumes (CT/MRI slice stacks) as slice sequences."""
