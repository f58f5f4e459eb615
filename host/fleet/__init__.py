"""The fleet: planning tasks, deploying blobs, running jobs on devices, device health."""
