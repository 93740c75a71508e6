from explorer.cli.main import main

main()
