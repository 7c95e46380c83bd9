"""netplumb as a CNI plugin: request parsing, results and errors (pure), and the plugin."""
