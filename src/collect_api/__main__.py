from collect_api.cli import main

main()
