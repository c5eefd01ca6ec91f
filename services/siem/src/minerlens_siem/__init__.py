"""minerlens SIEM exporters: OCSF Detection Findings from the alerts topic to ECS, CEF over syslog
and Splunk HEC."""
