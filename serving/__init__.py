"""ftray's Ray Serve application: registry versions behind an HTTP endpoint."""
