from roomcast_harness.cli import main

main()
