"""Field agent: Modbus polling, the wire format, uplink publishing and the plant simulator."""
