"""The Fixlens AR server: wire protocol, live sessions, inference service, REST, auth and storage."""
