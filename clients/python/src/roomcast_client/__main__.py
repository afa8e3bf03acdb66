from roomcast_client.cli import main

main()
