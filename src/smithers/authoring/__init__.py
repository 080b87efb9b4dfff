"""What users write: workflows, nodes, policies and the render context. No I/O here."""
