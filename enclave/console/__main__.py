from enclave.console.app import main

main()
