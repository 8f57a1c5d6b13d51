"""influx"""
