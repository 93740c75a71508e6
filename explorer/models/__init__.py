"""Model sources, architecture access and export. The only package (with lens/ and
experiments/) that imports torch and transformers."""
