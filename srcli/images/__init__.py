"""Images on disk: reading and writing every supported format, batch planning (inputs, output names, no-overwrite rules), and the upscale and degrade jobs."""
